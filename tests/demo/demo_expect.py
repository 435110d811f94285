"""Helpers of the demo tests: read back what the demo sent and compare it to its ground truth."""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer
from waiting import poll_until

from sagascope.demo_services import SagaTruth
from sagascope.settings import DemoSettings

_runs = itertools.count()


def make_faulty_demo_settings() -> DemoSettings:
    """A short, fast run (60 sagas) that takes every flow and scenario, with every fault on.

    The seed is fixed, so which sagas stall, repeat or retry is the same in every run; the
    tests assert the coverage they rely on, so a changed seed cannot silently weaken them.
    """
    n = next(_runs)
    return DemoSettings(
        rate=40.0, max_sagas=60, seed=11, failure_rate=0.6,
        drop_rate=0.03, duplicate_rate=0.1, error_rate=0.2, latency_ms=4.0,
        skewed_service="inventory", clock_skew_s=-30.0, card_update_wait_s=1.5,
        # The run id is part of every saga id, so it is fixed too (the prefix isolates runs).
        topic_prefix=f"demo{os.getpid()}x{n}.", run_id="t1", partitions=2,
        max_poll_interval_ms=3000,
    )


@dataclass
class Sent:
    """One record as it reached Kafka."""

    topic: str
    kafka_ms: int
    headers: dict[str, str]
    payload: dict[str, Any]

    @property
    def saga_id(self) -> str:
        return self.headers.get("ce_sagaid") or str(self.payload.get("orderRef", ""))

    @property
    def type(self) -> str:
        return self.headers.get("ce_type") or str(self.payload.get("event", ""))

    @property
    def signature(self) -> tuple[str, str, str, str, str, str]:
        """(type, source, kind, step, saga_status, compensates), as the ground truth states it."""
        h = self.headers
        source = h.get("ce_source") or str(self.payload.get("system", ""))
        return (self.type, source, h.get("ce_kind", ""), h.get("ce_step", ""),
                h.get("ce_sagastatus", ""), h.get("ce_compensates", ""))


@dataclass
class SagaRecords:
    records: list[Sent] = field(default_factory=list)

    def distinct(self) -> list[Sent]:
        """Each message once (a duplicate send repeats its ce_id), in Kafka time order."""
        seen: set[str] = set()
        out = []
        for rec in sorted(self.records, key=lambda r: r.kafka_ms):
            mid = rec.headers.get("ce_id", "")
            if mid and mid in seen:
                continue
            seen.add(mid)
            out.append(rec)
        return out


def read_all(bootstrap_servers: str, topics: list[str],
             done: Callable[[dict[str, SagaRecords]], bool],
             timeout_s: float = 30.0) -> dict[str, SagaRecords]:
    """Every record on ``topics``, grouped by saga id, read until ``done`` says so or time is up."""
    consumer = KafkaConsumer(
        *topics, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest",
        enable_auto_commit=False, consumer_timeout_ms=500,
    )
    by_saga: dict[str, SagaRecords] = defaultdict(SagaRecords)

    def read_more() -> bool:
        for rec in consumer:  # until half a second passes without a record
            headers = {k: (v or b"").decode() for k, v in rec.headers or ()}
            sent = Sent(rec.topic, rec.timestamp, headers, json.loads(rec.value))
            by_saga[sent.saga_id].records.append(sent)
        return done(by_saga)

    try:
        poll_until(read_more, timeout_s, interval_s=0)
    finally:
        consumer.close()
    return by_saga


Signature = tuple[str, str, str, str, str, str]


def expected_signatures(truth: SagaTruth) -> list[Signature]:
    return [(m.type, m.source, m.kind, m.step, m.saga_status, m.compensates)
            for m in truth.messages]


def in_truth_order(truth: SagaTruth, got: list[Signature]) -> list[Signature]:
    """``got`` with messages sent together (order not defined) sorted as the truth has them."""
    want = expected_signatures(truth)
    if len(got) != len(want):
        return got
    out = list(got)
    for group in truth.concurrent_groups():
        if len(group) > 1:
            rank = {sig: n for n, sig in enumerate(want[group.start:group.stop])}
            out[group.start:group.stop] = sorted(got[group.start:group.stop],
                                                 key=lambda sig: rank.get(sig, len(rank)))
    return out


def mismatch(truth: SagaTruth, got: SagaRecords) -> str:
    """Why the records of a saga differ from its truth; "" when they match."""
    distinct = got.distinct()
    want = expected_signatures(truth)
    have = [r.signature for r in distinct]
    if Counter(want) != Counter(have):
        return (f"{truth.saga_id} ({truth.plan.saga_type}/{truth.plan.scenario}, "
                f"{truth.status}):\n  expected {want}\n  got      {have}")
    # Causal order shows in Kafka time: the n-th expected message is not older than the
    # one before it (ties are sends from the same handler).
    times: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for rec in distinct:
        times[rec.signature].append(rec.kafka_ms)
    used: Counter[tuple[str, ...]] = Counter()
    previous = 0
    for sig in want:
        moment = sorted(times[sig])[used[sig]]
        used[sig] += 1
        if moment < previous:
            return f"{truth.saga_id}: {sig[0]} sent before its cause ({moment} < {previous})"
        previous = moment
    return ""
