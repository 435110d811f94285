"""Records to learn from: read from Kafka without a consumer group, or from the store.

Reading Kafka, discovery assigns partitions itself (``group_id=None``): it joins no group and
commits nothing, so neither the collector's group nor any other sees it.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: Topics never sampled unless asked for by name: Kafka's and sagascope's own.
INTERNAL_TOPICS = re.compile(r"__.*|_sagascope\..*")


@dataclass(frozen=True)
class SampledRecord:
    """One record as the collector's decoder takes it (the attributes of a ``ConsumerRecord``)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def key_text(self) -> str:
        return self.key.decode("utf-8", errors="replace") if self.key is not None else ""


def matching_topics(topics: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The topics any of ``patterns`` (regexes, matched against the whole name) selects;
    without patterns every topic but the internal ones."""
    compiled = [re.compile(p) for p in patterns]
    chosen = []
    for topic in sorted(topics):
        if compiled:
            if any(p.fullmatch(topic) for p in compiled):
                chosen.append(topic)
        elif not INTERNAL_TOPICS.fullmatch(topic):
            chosen.append(topic)
    return chosen


def sample_kafka(
    client_config: Mapping[str, Any],
    patterns: Sequence[str] = (),
    per_topic: int = 2000,
    timeout_s: float = 30.0,
) -> list[SampledRecord]:
    """The latest ``per_topic`` records of each chosen topic (spread over its partitions).

    ``client_config`` holds kafka-python arguments (``bootstrap_servers`` and security).
    No consumer group is joined and no offset is committed.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **{**client_config, "group_id": None, "enable_auto_commit": False,
           "consumer_timeout_ms": 1000}
    )
    try:
        topics = matching_topics(consumer.topics(), patterns)
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        begin = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        per_partition: dict[str, int] = {}
        for topic in topics:
            count = sum(1 for tp in partitions if tp.topic == topic)
            per_partition[topic] = max(1, -(-per_topic // max(count, 1)))
        # ListOffsets may undercount (the embedded Tansu answers with the last batch's base
        # offset + 1), so the start may be early: keep the last records of each partition and
        # stop at the high watermark the fetches report.
        starts = {tp: max(begin[tp], end[tp] - per_partition[tp.topic]) for tp in partitions}
        kept = {tp: deque[SampledRecord](maxlen=per_partition[tp.topic]) for tp in partitions}
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        pending = set(partitions)
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                kept[tp].extend(_from_consumer_record(r) for r in batch)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None and consumer.position(tp) >= highwater:
                    pending.discard(tp)
        if pending:
            log.warning("discover sample incomplete partitions=%s", sorted(map(str, pending)))
        records = [r for tp in partitions for r in kept[tp]]
        return records
    finally:
        consumer.close(autocommit=False)


def _from_consumer_record(r: Any) -> SampledRecord:
    headers: dict[str, str] = {}
    for name, value in r.headers or ():
        headers[name] = value.decode("utf-8", errors="replace") if value is not None else ""
    return SampledRecord(
        r.topic, r.partition, r.offset, r.timestamp if r.timestamp is not None else 0,
        r.key, r.value, headers,
    )


def sample_store(store: Any, patterns: Sequence[str] = (), per_topic: int = 2000) -> list[SampledRecord]:
    """The latest ``per_topic`` stored records of each chosen topic that no saga claimed.

    The payload is what the store keeps (redacted, capped); headers the store's columns
    reproduce were elided, but a record without a saga carried none of those.
    """
    topics = [r[0] for r in store.query(
        "SELECT DISTINCT topic FROM messages WHERE saga_id = ''").rows]
    chosen = matching_topics(topics, patterns)
    if not chosen:
        return []
    result = store.query(
        "SELECT topic, partition, offset, toUnixTimestamp64Milli(kafka_time), kafka_key, "
        "headers, payload FROM messages WHERE saga_id = '' AND topic IN {topics:Array(String)} "
        "ORDER BY topic, kafka_time DESC, partition, offset DESC LIMIT {n:UInt32} BY topic",
        {"topics": chosen, "n": per_topic},
    )
    records = []
    for topic, partition, offset, kafka_ms, key, headers, payload in result.rows:
        records.append(SampledRecord(
            topic, int(partition), int(offset), int(kafka_ms),
            key.encode() if key else None, payload.encode() if payload else None,
            dict(headers or {}),
        ))
    records.sort(key=lambda r: (r.topic, r.partition, r.offset))
    return records

