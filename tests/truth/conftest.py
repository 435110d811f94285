"""The truth harness's one store: several random saga systems, sent as Kafka records with the
contract headers through the embedded broker, stored by the real collector, seeded once.

Seeds: a fixed set by default; ``SAGASCOPE_TRUTH_SYSTEMS=N`` adds N random ones (drawn from
``SAGASCOPE_TRUTH_SEED``, default 26; each seed is in the failing test's id) for a long local
run, e.g. ``SAGASCOPE_TRUTH_SYSTEMS=50 SAGASCOPE_TRUTH_SEED=1 pytest tests/truth``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from generator import THRESHOLD_S, Message, SagaSystem, generate_system
from kafka import KafkaProducer
from oracle import Expected, expect
from sagascope.collector import Collector
from sagascope.instrumentation import contract as c
from sagascope.queries import SagaQueries
from sagascope.store import ChdbStore, ensure_schema
from sagascope.store.timetext import rfc3339_ms
from waiting import wait_until

from sagascope.settings import AlertSettings, load_settings

REPO_CONFIG = Path(__file__).resolve().parents[2] / "sagascope.toml"

#: Seeds every run checks (chosen to cover orchestrated and choreographed, named and
#: stepless steps, shared and separate topics, each undo fate).
FIXED_SEEDS = (3, 11, 26, 42, 101, 7777)


def truth_seeds() -> list[int]:
    extra = int(os.environ.get("SAGASCOPE_TRUTH_SYSTEMS", "0") or 0)
    rng = random.Random(os.environ.get("SAGASCOPE_TRUTH_SEED", "26"))
    return [*FIXED_SEEDS, *(rng.randrange(10**6, 10**7) for _ in range(extra))]


@dataclass
class Seeded:
    store: ChdbStore
    queries: SagaQueries
    systems: dict[int, SagaSystem]
    expected: dict[int, Expected]
    watermark_ms: int


def _headers(m: Message) -> list[tuple[str, bytes]]:
    span = m.message_id.replace("-", "")[:16]
    values = {
        c.TRACEPARENT: f"00-{m.trace_id}-{span}-01",
        c.CE_SPECVERSION: c.SPECVERSION, c.CE_ID: m.message_id, c.CE_SOURCE: m.source,
        c.CE_TYPE: m.type, c.CE_TIME: rfc3339_ms(m.event_ms), c.CE_SAGAID: m.saga_id,
        c.CE_SAGATYPE: m.saga_type, c.CE_KIND: m.kind, c.CE_CAUSATIONID: m.causation_id,
        c.CE_STEP: m.step, c.CE_SAGASTATUS: m.status, c.CE_COMPENSATES: m.compensates,
    }
    return [(k, v.encode()) for k, v in values.items() if v]


def produce(bootstrap_servers: str, systems: list[SagaSystem]) -> int:
    """Send every system's records, each with its true time as the Kafka timestamp."""
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=20, acks=1)
    sent = 0
    try:
        for system in systems:
            for m in sorted(system.messages, key=lambda m: m.kafka_ms):
                producer.send(m.topic, json.dumps(m.payload).encode(), key=m.saga_id.encode(),
                              headers=_headers(m), timestamp_ms=m.kafka_ms)
                sent += 1
        producer.flush(60)
    finally:
        producer.close(10)
    return sent


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
