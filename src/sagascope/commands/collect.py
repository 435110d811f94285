"""``sagascope collect``: consume Kafka topics into the store until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from sagascope.commands._flags import add_collector_topic_flags, setting_flag
from sagascope.settings import Settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_collector_topic_flags(parser)
    setting_flag(parser, "--metrics-port", setting="collector.metrics_port", type=int,
                 metavar="PORT", help="serve Prometheus metrics on this port; 0 disables")
    setting_flag(parser, "--batch-rows", setting="collector.batch_rows", type=int, metavar="N",
                 help="rows per insert at most")
    setting_flag(parser, "--flush-interval", setting="collector.flush_interval_s", type=float,
                 metavar="SECONDS", help="insert at least this often")
    setting_flag(parser, "--client", setting="collector.client",
                 choices=("kafka-python", "confluent-kafka"),
                 help="Kafka client to consume with; default kafka-python")
    parser.add_argument("--collector-id", help="name of this collector in the progress table")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sagascope.collector import Collector
    from sagascope.commands._connect import consumer_config, open_owned_store, quiet_kafka_clients

    quiet_kafka_clients(args.verbose)
    kafka_config = consumer_config(settings, "collect")
    store, owner = open_owned_store(settings.store, "collect")
    if owner is not None:
        print(f"sagascope collect: store {settings.store.path}; other processes read it at "
              f"{owner.url}, token in {settings.store.path}/owner.json", flush=True)
    collector = Collector(
        store, settings.broker.bootstrap_servers, settings.collector,
        collector_id=args.collector_id, consumer_config=kafka_config,
    )
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        collector.run(stop)
    finally:
        if owner is not None:
            owner.close()
    return 0
