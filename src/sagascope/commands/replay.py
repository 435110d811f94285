"""``sagascope replay LOG``: load an event log (CSV or XES, plain or gzipped) into Kafka."""

from __future__ import annotations

import argparse
import re
import sys
import time

from sagascope.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", help="event log: .csv or .xes, optionally .gz")
    parser.add_argument("--topic", help="target topic (default: replay.<log name>)")
    parser.add_argument("--partitions", type=int, default=3, help="partitions if the topic is new")
    parser.add_argument("--name", help="saga type for the cases (default: the log's name)")
    parser.add_argument("--case-column", help="case id column / XES trace attribute")
    parser.add_argument("--activity-column", help="activity column / XES event attribute")
    parser.add_argument("--time-column", help="timestamp column / XES event attribute")
    parser.add_argument(
        "--speed", type=float, metavar="X",
        help="replay in log time sped up X times (default: as fast as possible)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--without-headers", action="store_true",
        help="send plain JSON keyed by case id, no headers (to try 'sagascope discover')",
    )


class ProgressBar:
    """A one-line progress bar on stderr."""

    def __init__(self, width: int = 30) -> None:
        self.width = width
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        filled = int(self.width * done / total) if total else self.width
        rate = done / max(time.monotonic() - self.started, 1e-9)
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} events "
            f"({rate:,.0f}/s)"
        )
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sagascope.commands._connect import kafka_client_config
    from sagascope.embedded import create_topics
    from sagascope.replay import read_log, replay

    kafka_config = kafka_client_config(settings, "replay")
    event_log = read_log(
        args.log, name=args.name, case_column=args.case_column,
        activity_column=args.activity_column, time_column=args.time_column,
    )
    topic = args.topic or "replay." + re.sub(r"[^A-Za-z0-9._-]", "-", event_log.name)
    create_topics(
        settings.broker.bootstrap_servers, {topic: max(args.partitions, 1)},
        client_config=kafka_config,
    )
    print(
        f"replaying {len(event_log.events)} events of {event_log.cases} cases "
        f"({event_log.name}) to {topic}",
        file=sys.stderr,
    )
    stats = replay(
        event_log, settings.broker.bootstrap_servers, topic, speed=args.speed,
        client_id=f"{settings.broker.client_id}-replay",
        progress=None if args.no_progress else ProgressBar(), client_config=kafka_config,
        with_headers=not args.without_headers,
    )
    print(f"{stats.events} events, {stats.cases} cases -> {stats.topic} in {stats.elapsed_s:.1f} s")
    return 0
