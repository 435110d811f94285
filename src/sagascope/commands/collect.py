"""``sagascope collect``: consume Kafka topics into the store until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from sagascope.settings import Settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--group-id", dest="collector.group_id", metavar="GROUP",
        help="consumer group (env SAGASCOPE_COLLECTOR_GROUP_ID)",
    )
    parser.add_argument(
        "--include", dest="collector.include", metavar="REGEX",
        help="topics to consume (env SAGASCOPE_COLLECTOR_INCLUDE)",
    )
    parser.add_argument(
        "--exclude", dest="collector.exclude", metavar="REGEX",
        help="topics never consumed (env SAGASCOPE_COLLECTOR_EXCLUDE)",
    )
    parser.add_argument(
        "--metrics-port", dest="collector.metrics_port", type=int, metavar="PORT",
        help="serve Prometheus metrics on this port; 0 disables (env SAGASCOPE_COLLECTOR_METRICS_PORT)",
    )
    parser.add_argument(
        "--batch-rows", dest="collector.batch_rows", type=int, metavar="N",
        help="rows per insert at most (env SAGASCOPE_COLLECTOR_BATCH_ROWS)",
    )
    parser.add_argument(
        "--flush-interval", dest="collector.flush_interval_s", type=float, metavar="SECONDS",
        help="insert at least this often (env SAGASCOPE_COLLECTOR_FLUSH_INTERVAL_S)",
    )
    parser.add_argument(
        "--client", dest="collector.client", choices=("kafka-python", "confluent-kafka"),
        help="Kafka client to consume with (env SAGASCOPE_COLLECTOR_CLIENT; default kafka-python)",
    )
    parser.add_argument("--collector-id", help="name of this collector in the progress table")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sagascope.collector import Collector
    from sagascope.commands._connect import kafka_client_config
    from sagascope.store import open_store_from_settings

    if not args.verbose:
        # Say what the collector does (store, broker, partitions and where each starts,
        # progress while catching up) without the Kafka client's routine warnings.
        logging.getLogger("sagascope.collector").setLevel(logging.INFO)
        logging.getLogger("kafka").setLevel(logging.ERROR)
    kafka_config = kafka_client_config(settings, "collect")
    if settings.collector.client == "confluent-kafka":
        # The same [broker] security settings, in librdkafka's property names.
        from sagascope.connections import confluent_config

        kafka_config = confluent_config(settings.broker)
    store = open_store_from_settings(settings.store)
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
    collector.run(stop)
    return 0
