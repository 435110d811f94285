"""``sagascope flow KEY``: the flow of one saga (by saga id, trace id or message id)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sagascope.commands._flags import setting_flag
from sagascope.settings import Settings

if TYPE_CHECKING:
    from sagascope.queries import Flow, SagaQueries


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", help="saga id, trace id or message id")
    parser.add_argument("--json", action="store_true", help="print the flow as JSON")
    parser.add_argument("--headers", action="store_true", help="show every message's headers")
    setting_flag(parser, "--hide-payloads", setting="dashboard.hide_payloads",
                 action="store_const", const=True, help="never print message payloads")


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width text table."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def open_queries(settings: Settings) -> SagaQueries:
    """The query layer over the configured store (read-only)."""
    from sagascope.queries import SagaQueries
    from sagascope.store import open_store_from_settings

    store = open_store_from_settings(settings.store, read_only=True)
    tables = store.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} "
        "AND name IN ('messages', 'saga_state')",
        {"db": store.database},
    ).scalar()
    if tables != 2:
        from sagascope.exceptions import SagascopeError

        raise SagascopeError(
            f"no sagascope tables in database {store.database!r}; "
            "run 'sagascope collect' (or 'sagascope demo') first"
        )
    return SagaQueries.from_settings(
        store, settings.alerts, hide_payloads=settings.dashboard.hide_payloads
    )


def warn_if_stale(queries: SagaQueries, settings: Settings) -> None:
    """Say on stderr when the data is older than ``dashboard.stale_after_s``."""
    warning = queries.freshness().warning(settings.dashboard.stale_after_s)
    if warning:
        print(f"sagascope: warning: {warning}", file=sys.stderr)


def format_flow(flow: Flow) -> str:
    """A flow as ``sagascope flow`` prints it: a title line, then one table row per message."""
    from sagascope.queries import causal_times

    title = f"saga {flow.saga_id}" if flow.saga_id else f"messages of {flow.key} (no saga)"
    lines = [
        f"{title}  type={flow.saga_type or '-'}  status={flow.status or '-'}  "
        f"messages={len(flow.messages)}  duration={flow.duration_s:.3f}s  "
        f"traces={len(flow.trace_ids)}  (matched by {flow.matched_by})"
    ]
    if flow.related_sagas:
        lines.append(f"also in: {', '.join(flow.related_sagas)}")
    # On the causal timeline from the saga's causal start (the dashboard's swimlane too), so
    # a clock running behind neither moves the start nor puts a reply before its command.
    start = flow.started
    rows = []
    for m, at in zip(flow.messages, causal_times(flow), strict=True):
        offset = (at - start).total_seconds() if start else 0.0
        notes = []
        if m.duplicates:
            notes.append(f"duplicate x{m.duplicates + 1}")
        if m.skew_s:
            notes.append(f"clock {m.skew_s:.1f}s behind cause")
        if m.cause_missing:
            notes.append("cause not stored")
        if m.parse_error:
            notes.append(f"error: {m.parse_error[:40]}")
        rows.append([
            m.event_time.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            f"+{offset:.3f}s",
            "  " * min(m.depth, 8) + m.type,
            m.kind or "-",
            m.source or "-",
            m.step or "-",
            m.saga_status or (f"undo {m.compensates}" if m.compensates else ""),
            f"{m.topic}[{m.partition}]@{m.offset}",
            "; ".join(notes),
        ])
    lines.append(format_table(
        ["event time", "since start", "type", "kind", "source", "step", "status", "record", "notes"],
        rows,
    ))
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sagascope.queries import NotFound

    queries = open_queries(settings)
    warn_if_stale(queries, settings)
    try:
        flow = queries.flow(args.key)
    except NotFound as exc:
        print(f"sagascope: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(_as_json(flow), indent=2, default=str))
        return 0
    print(format_flow(flow))
    if args.headers:
        for m in flow.messages:
            print(f"\n{m.type} {m.message_id}")
            for k, v in sorted(m.headers.items()):
                print(f"  {k}: {v}")
    return 0


def _as_json(flow: Flow) -> dict[str, Any]:
    import dataclasses

    data = dataclasses.asdict(flow)
    data["duration_s"] = flow.duration_s
    return data
