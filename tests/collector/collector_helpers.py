"""Helpers of the collector tests: records, a producer that logs acks, a running collector
(waits: ``waiting``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

from sagascope.collector import Collector


def make_record(
    value: bytes | None,
    *,
    topic: str = "orders",
    partition: int = 0,
    offset: int = 0,
    key: bytes | None = None,
    headers: Iterable[tuple[str, bytes]] = (),
    timestamp: int = 1_763_800_000_123,
) -> ConsumerRecord:
    """A kafka-python ConsumerRecord as the consumer hands it over (raw bytes)."""
    return ConsumerRecord(
        topic,
        partition,
        -1,
        offset,
        timestamp,
        0,
        key,
        value,
        list(headers),
        None,
        len(key or b""),
        len(value or b""),
        -1,
    )


@dataclass
class ProducedLog:
    """What the broker acknowledged: (topic, partition, offset) of every record, and the bad ones."""

    acked: set[tuple[str, int, int]] = field(default_factory=set)
    bad: dict[tuple[str, int, int], str] = field(default_factory=dict)


@contextmanager
def running(collector: Collector) -> Iterator[Collector]:
    """The collector started for the block and stopped after it, also when the block fails."""
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


@contextmanager
def producer(bootstrap_servers: str, **config: Any) -> Iterator[KafkaProducer]:
    p = KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        linger_ms=5,
        acks=1,
        max_request_size=8 * 1024 * 1024,
        **config,
    )
    try:
        yield p
    finally:
        p.close(timeout=10)


def send_all(
    p: KafkaProducer,
    items: Iterable[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]], str]],
    log: ProducedLog,
) -> None:
    """Send (topic, key, value, headers, bad_kind) items; record acknowledged offsets."""
    futures = []
    for topic, key, value, headers, bad in items:
        futures.append((p.send(topic, key=key, value=value, headers=headers), bad))
    p.flush(timeout=60)
    for future, bad in futures:
        md = future.get(timeout=60)
        where = (md.topic, md.partition, md.offset)
        log.acked.add(where)
        if bad:
            log.bad[where] = bad
