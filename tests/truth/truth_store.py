"""The truth harness's store: the seeds, the systems as Kafka records with the contract
headers, and what a test gets (``Seeded``). The session fixture is in ``conftest.py``.

Seeds: a fixed set by default; ``SAGASCOPE_TRUTH_SYSTEMS=N`` adds N random ones (drawn from
``SAGASCOPE_TRUTH_SEED``, default 26; each seed is in the failing test's id) for a long local
run, e.g. ``SAGASCOPE_TRUTH_SYSTEMS=50 SAGASCOPE_TRUTH_SEED=1 pytest tests/truth``.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaProducer
from truth_generator import Message, SagaSystem
from truth_oracle import Expected

from sagascope.instrumentation import contract as c
from sagascope.queries import SagaQueries
from sagascope.store import ChdbStore
from sagascope.store.timetext import rfc3339_ms

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
