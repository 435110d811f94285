"""The truth harness's one store: several random saga systems, sent as Kafka records with the
contract headers through the embedded broker, stored by the real collector, seeded once per
session (seeds: see ``truth_store.py``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from truth_generator import THRESHOLD_S, generate_system
from truth_oracle import expect
from truth_store import REPO_CONFIG, Seeded, produce, truth_seeds
from waiting import wait_until

from sagascope.collector import Collector
from sagascope.queries import SagaQueries
from sagascope.settings import AlertSettings, load_settings
from sagascope.store import ChdbStore, ensure_schema


@pytest.fixture(scope="session")
def truth(bootstrap_servers: str, chdb_path: str) -> Iterator[Seeded]:
    from sagascope.embedded import create_topics

    now = datetime.now(UTC)
    systems = {seed: generate_system(seed, now) for seed in truth_seeds()}
    create_topics(bootstrap_servers,
                  {t: 1 for s in systems.values() for t in s.topics})
    shipped = load_settings(REPO_CONFIG)
    settings = dataclasses.replace(
        shipped.collector, group_id=f"truth-{os.getpid()}", include=r"truth\d+\..*",
        telemetry_topic="truth-spans", flush_interval_s=0.3, max_poll_interval_ms=3000,
        topic_refresh_s=1.0,
    )
    store = ChdbStore(chdb_path, f"truth_{os.getpid()}")
    ensure_schema(store)
    collector = Collector(store, bootstrap_servers, settings, collector_id="truth")
    try:
        collector.start()
        assert collector.ready.wait(60), "collector got no partitions"
        sent = produce(bootstrap_servers, list(systems.values()))
        wait_until(lambda: store.query("SELECT count() FROM messages").scalar() >= sent,
                   timeout_s=180, what=f"{sent} records stored")
        # Caught up everywhere: the watermark has passed the newest record.
        newest = max(m.kafka_ms for s in systems.values() for m in s.messages)
        wait_until(
            lambda: store.query(
                "SELECT toUnixTimestamp64Milli(min(read_until)) FROM "
                "(SELECT read_until FROM progress FINAL)").scalar() > newest,
            timeout_s=60, what="the watermark past the newest record")
    finally:
        collector.stop()
    queries = SagaQueries.from_settings(store, AlertSettings(default_threshold_s=THRESHOLD_S))
    watermark_ms = int(queries.watermark().timestamp() * 1000)
    assert watermark_ms - int(now.timestamp() * 1000) < THRESHOLD_S * 500, "seeding too slow"
    expected = {seed: expect(system, watermark_ms) for seed, system in systems.items()}
    yield Seeded(store, queries, systems, expected, watermark_ms)
    store.command(f"DROP DATABASE IF EXISTS {store.database}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "seed" in metafunc.fixturenames:
        metafunc.parametrize("seed", truth_seeds())
