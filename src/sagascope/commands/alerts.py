"""``sagascope alerts``: list open alerts and those resolved recently."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

from sagascope.exceptions import SagascopeError
from sagascope.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state", choices=("open", "resolved", "all"), default="all",
        help="which alerts to list (default: open ones, then recently resolved ones)",
    )
    parser.add_argument(
        "--hours", type=float, default=24.0,
        help="how far back resolved alerts are listed (default 24)",
    )
    parser.add_argument("--limit", type=int, default=100, help="at most this many per state")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sagascope.queries import list_alerts
    from sagascope.store import StoreError, open_store_from_settings

    if args.limit < 1:
        raise SagascopeError(f"--limit must be >= 1, got {args.limit}")
    if args.hours <= 0:
        raise SagascopeError(f"--hours must be > 0, got {args.hours}")
    store = open_store_from_settings(settings.store, read_only=True)
    try:
        alerts = []
        if args.state in ("open", "all"):
            alerts += list_alerts(store, state="open", limit=args.limit)
        if args.state in ("resolved", "all"):
            since = datetime.now(UTC) - timedelta(hours=args.hours)
            alerts += list_alerts(store, state="resolved", since=since, limit=args.limit)
    except StoreError as exc:
        if "UNKNOWN_TABLE" in str(exc) or "does not exist" in str(exc):
            raise SagascopeError(
                f"no alerts table in database {store.database}: run 'sagascope alert' first"
            ) from exc
        raise
    finally:
        store.close()
    if args.json:
        for alert in alerts:
            print(json.dumps(alert.to_json()))
        return 0
    if not alerts:
        print("no alerts")
        return 0
    header = ("STATE", "SAGA", "TYPE", "STALLED AFTER", "WAITING FOR", "SILENT SINCE", "THRESHOLD",
              "RESOLVED", "LINK")
    rows = [header]
    for a in alerts:
        resolved = ""
        if a.resolved_at is not None:
            resolved = f"{a.resolved_at:%Y-%m-%d %H:%M:%S} ({a.resolution})"
        rows.append((
            a.state, a.saga_id, a.saga_type, a.step, a.waiting_for,
            f"{a.since:%Y-%m-%d %H:%M:%S}", f"{a.threshold_s:g}s", resolved, a.link,
        ))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header) - 1)]
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0
