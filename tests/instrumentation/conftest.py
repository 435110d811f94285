"""Fixtures for the instrumentation tests: a real producer, and reading records back by assignment."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from waiting import collect, poll_until, polled

from sagascope.testing import SpanCapture, capture_spans


@pytest.fixture(scope="session")
def kafka_producer(bootstrap_servers: str) -> Iterator[KafkaProducer]:
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=1)
    yield producer
    producer.close(timeout=5)


@pytest.fixture
def spans() -> Iterator[SpanCapture]:
    with capture_spans("test") as capture:
        yield capture


ReadRecords = Callable[..., list[Any]]


@pytest.fixture
def read_records(bootstrap_servers: str) -> Iterator[ReadRecords]:
    """read_records(topic, n): the first n records of topic (all partitions), or fail after 20 s."""
    consumers: list[KafkaConsumer] = []

    def read(topic: str, n: int, timeout_s: float = 20.0) -> list[Any]:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
        consumers.append(consumer)
        started = time.monotonic()
        partitions = poll_until(lambda: consumer.partitions_for_topic(topic), timeout_s, 0)
        assert partitions, f"topic {topic} has no partitions"
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        left_s = timeout_s - (time.monotonic() - started)  # one timeout for both waits
        records = collect(lambda: polled(consumer), n, left_s)
        assert len(records) >= n, f"read {len(records)} of {n} records from {topic}"
        return sorted(records, key=lambda r: (r.partition, r.offset))[:n]

    yield read
    for consumer in consumers:
        consumer.close()

