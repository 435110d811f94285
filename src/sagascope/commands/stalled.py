"""``sagascope stalled``: list stalled sagas (not finished, silent past their threshold)."""

from __future__ import annotations

import argparse
import json

from sagascope.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--saga-type", help="only sagas of this type")
    parser.add_argument("--limit", type=int, default=100, help="print at most this many")
    parser.add_argument("--json", action="store_true", help="print JSON lines")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sagascope.commands.flow import format_table, open_queries, warn_if_stale
    from sagascope.queries import SagaFilter
    from sagascope.queries.formatting import format_duration

    queries = open_queries(settings)
    # A stopped collector makes "no stalled sagas" a false comfort: say so first.
    warn_if_stale(queries, settings)
    stalled = queries.stalled(SagaFilter(saga_type=args.saga_type or None))
    shown = stalled[: max(args.limit, 0)]
    if args.json:
        for s in shown:
            print(json.dumps({
                "saga_id": s.saga_id, "saga_type": s.saga_type, "step": s.step,
                "last_type": s.last_type, "waiting_for": s.waiting_for,
                "since": s.since.isoformat(), "silent_s": s.silent_s,
                "threshold_s": s.threshold_s,
            }))
        return 0
    if not stalled:
        print(f"no stalled sagas (data as of {queries.watermark():%Y-%m-%d %H:%M:%S} UTC)")
        return 0
    print(format_table(
        ["saga id", "saga type", "stalled after", "waiting for", "silent", "threshold", "since"],
        [
            [s.saga_id, s.saga_type, s.step, s.waiting_for, format_duration(s.silent_s),
             format_duration(s.threshold_s), f"{s.since:%Y-%m-%d %H:%M:%S}"]
            for s in shown
        ],
    ))
    more = len(stalled) - len(shown)
    print(f"{len(stalled)} stalled saga(s)" + (f", {more} not shown" if more > 0 else ""))
    return 0
