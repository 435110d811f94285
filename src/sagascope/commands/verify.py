"""``sagascope verify``: prove the stored audit trail complete (contiguous offsets) and unedited."""

from __future__ import annotations

import argparse
import json

from sagascope.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", default="", metavar="REGEX", help="only topics matching this")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when every partition verifies, 1 when any loss, deletion, edit or duplicate shows."""
    from sagascope.store import open_store_from_settings, verify

    store = open_store_from_settings(settings.store, read_only=True)
    report = verify(store, args.topic)
    if args.json:
        print(json.dumps({
            "ok": report.ok,
            "rows": report.rows,
            "partitions": [
                {
                    "topic": p.topic, "partition": p.partition, "rows": p.rows,
                    "first_offset": p.first_offset, "last_offset": p.last_offset,
                    "lost": p.lost, "deleted": p.deleted, "edited": p.edited,
                    "duplicates": p.duplicates, "never_stored": p.never_stored, "ok": p.ok,
                }
                for p in report.partitions
            ],
        }, indent=2))
    else:
        for p in report.partitions:
            span = "empty" if p.first_offset is None else f"offsets {p.first_offset}-{p.last_offset}"
            print(f"{'OK  ' if p.ok else 'FAIL'} {p.topic}[{p.partition}] {p.rows} rows, {span}")
            for problem in p.problems():
                print(f"     {problem}")
            for note in p.notes():
                print(f"     note: {note}")
        bad = sum(not p.ok for p in report.partitions)
        print(
            f"{len(report.partitions)} partition(s), {report.rows} rows: "
            + ("audit trail complete and unedited" if report.ok else f"{bad} partition(s) FAILED")
        )
    return 0 if report.ok else 1
