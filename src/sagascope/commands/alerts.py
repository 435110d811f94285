"""``sagascope alerts``: open alerts (silenced ones apart) and those resolved recently, or their
groups; the counts on top are the dashboard's Alerts page's."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sagascope.exceptions import SagascopeError
from sagascope.settings import Settings

if TYPE_CHECKING:
    from sagascope.queries import AlertGroup

#: ``--state`` -> the group states it lists (``open`` includes acknowledged groups).
STATES = {
    "open": ("open", "acknowledged"),
    "silenced": ("silenced",),
    "resolved": ("resolved",),
    "all": ("open", "acknowledged", "silenced", "resolved"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state", choices=tuple(STATES), default="all",
        help="which alerts to list: open (acknowledged ones included), silenced, resolved, or "
             "all (default)",
    )
    parser.add_argument(
        "--hours", type=float, default=24.0,
        help="how far back resolved alerts are listed and counted (default 24)",
    )
    parser.add_argument("--limit", type=int, default=100, help="at most this many per state")
    parser.add_argument("--groups", action="store_true",
                        help="one line per group (saga type and step) instead of per alert")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sagascope.queries import AlertCounts, alert_groups, list_alerts
    from sagascope.store import StoreError, open_store_from_settings

    if args.limit < 1:
        raise SagascopeError(f"--limit must be >= 1, got {args.limit}")
    if args.hours <= 0:
        raise SagascopeError(f"--hours must be > 0, got {args.hours}")
    wanted = STATES[args.state]
    now = datetime.now(UTC)
    since = now - timedelta(hours=args.hours)
    store = open_store_from_settings(settings.store, read_only=True)
    try:
        groups = alert_groups(store, since=since, now=now)
        group_state = {(g.saga_type, g.step): g.state for g in groups}
        alerts = []
        if wanted != ("resolved",):
            alerts += [a for a in list_alerts(store, state="open", limit=None)
                       if group_state.get((a.saga_type, a.step), "open") in wanted][:args.limit]
        if "resolved" in wanted:
            alerts += list_alerts(store, state="resolved", since=since, limit=args.limit)
    except StoreError as exc:
        if "UNKNOWN_TABLE" in str(exc) or "does not exist" in str(exc):
            raise SagascopeError(
                f"no alerts table in database {store.database}: run 'sagascope alert' first"
            ) from exc
        raise
    finally:
        store.close()
    shown_groups = [g for g in groups if g.state in wanted]
    if args.json:
        if args.groups:
            for group in shown_groups:
                print(json.dumps(_group_json(group)))
        else:
            for alert in alerts:
                state = group_state.get((alert.saga_type, alert.step), alert.state)
                print(json.dumps({**alert.to_json(), "group_state": state}))
        return 0
    if not groups:
        print("no alerts")
        return 0
    counts = AlertCounts.of(groups)
    print(f"{counts.open} open ({counts.acknowledged} acknowledged), {counts.silenced} silenced, "
          f"{counts.resolved} resolved in the last {args.hours:g} h")
    if args.groups:
        _print_table(
            ("STATE", "TYPE", "STEP", "OPEN", "RESOLVED", "HANDLED BY", "WAITING FOR"),
            [(g.state, g.saga_type, g.step, str(g.open), str(g.resolved),
              g.handled_text(_minute), g.waiting_text) for g in shown_groups],
        )
        return 0
    rows = []
    for a in alerts:
        resolved = ""
        if a.resolved_at is not None:
            resolved = f"{a.resolved_at:%Y-%m-%d %H:%M:%S} ({a.resolution})"
        state = group_state.get((a.saga_type, a.step), "open") if a.state == "open" else a.state
        rows.append((
            state, a.saga_id, a.saga_type, a.step, a.waiting_for,
            f"{a.since:%Y-%m-%d %H:%M:%S}", f"{a.threshold_s:g}s", resolved, a.link,
        ))
    _print_table(("STATE", "SAGA", "TYPE", "STALLED AFTER", "WAITING FOR", "SILENT SINCE",
                  "THRESHOLD", "RESOLVED", "LINK"), rows)
    return 0


def _minute(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}"


def _group_json(group: AlertGroup) -> dict[str, Any]:
    out: dict[str, Any] = {
        "saga_type": group.saga_type, "step": group.step, "state": group.state,
        "open": group.open, "resolved": group.resolved,
        "waiting_for": dict(group.waiting_for), "example_saga_id": group.example_saga_id,
        "handled_action": group.handled_action, "handled_by": group.handled_by,
        "note": group.note,
    }
    for name in ("oldest_since", "newest_opened", "last_resolved", "handled_at",
                 "silenced_until"):
        value = getattr(group, name)
        out[name] = value.isoformat().replace("+00:00", "Z") if value is not None else None
    return out


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last one (a link or a list) left free."""
    table = [tuple(header), *rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header) - 1)]
    for r in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1])
