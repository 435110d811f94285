"""A demo run through the real broker, a collector and a chDB store, settled against its
ground truth: shared by the tests that compare what the demo says it did with the store."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from waiting import poll_until

from sagascope.collector import Collector
from sagascope.demo_services import DemoRunner, SagaTruth
from sagascope.queries import SagaFilter, SagaQueries
from sagascope.settings import AlertSettings, DemoSettings, load_settings
from sagascope.store import ChdbStore, ensure_schema

REPO_CONFIG = Path(__file__).resolve().parents[2] / "sagascope.toml"


@contextmanager
def settled_demo_run(
    bootstrap_servers: str, chdb_path: str, demo: DemoSettings, *, database: str,
    collector_id: str, threshold_s: float,
) -> Iterator[tuple[ChdbStore, list[SagaTruth], SagaQueries]]:
    """Run ``demo``'s traffic to the end into a fresh database ``database``, then wait (up to
    90 s) until every saga's stored status is its ground truth's; (store, truths, queries).
    The database is dropped afterwards."""
    shipped = load_settings(REPO_CONFIG)
    prefix = demo.topic_prefix
    collector_settings = dataclasses.replace(
        shipped.collector, group_id=f"{prefix}collector", include=f"{re.escape(prefix)}.*",
        telemetry_topic=f"{prefix}spans", flush_interval_s=0.3, max_poll_interval_ms=3000,
    )
    # Not the shared ``store`` fixture (one per test): a run is shared by a module's tests.
    store = ChdbStore(chdb_path, database)
    ensure_schema(store)
    runner = DemoRunner(demo, bootstrap_servers, telemetry_topic=collector_settings.telemetry_topic)
    runner.start(traffic=False)
    collector = Collector(store, bootstrap_servers, collector_settings, collector_id=collector_id)
    queries = SagaQueries.from_settings(store, AlertSettings(default_threshold_s=threshold_s))
    try:
        collector.start()
        assert collector.ready.wait(60), "collector got no partitions"
        runner.wait_ready(30)
        assert runner.traffic is not None
        runner.traffic.start()
        assert runner.traffic.wait_finished(60)
        truths = runner.ground_truth.sagas()

        def settled() -> bool:
            stored = {s.saga_id: s.status for s in queries.sagas(SagaFilter(), limit=10_000)}
            return all(stored.get(t.saga_id) == t.status for t in truths)

        poll_until(settled, 90, 0.5)  # the tests compare what is stored by then
        yield store, truths, queries
    finally:
        runner.stop()
        collector.stop()
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
