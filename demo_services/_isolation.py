"""Whether topics hold records the demo did not write (the demo writes into none of those)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from sagascope.demo_services._topics import DEMO_KEY

log = logging.getLogger(__name__)

# The key reported for a record that could not be read in time (counted as not the demo's).
_UNREAD = "\0unread"


def foreign_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    *,
    client_config: Mapping[str, Any] | None = None,
    timeout_s: float = 30.0,
) -> dict[str, str]:
    """Topics among ``topics`` holding records the demo did not write, with why.

    Reads the first and the last record of every partition (no consumer group, nothing
    committed); a record is the demo's when its key is a demo saga id (:data:`DEMO_KEY`).
    Topics that do not exist or hold nothing are the demo's to create and fill.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**{
        **(client_config or {}), "bootstrap_servers": bootstrap_servers, "group_id": None,
        "enable_auto_commit": False, "client_id": "sagascope-demo-check",
        "request_timeout_ms": int(timeout_s * 1000),
    })
    try:
        existing = consumer.topics()
        partitions = [
            TopicPartition(name, p)
            for name in topics if name in existing
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        if not partitions:
            return {}
        first = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        probes = {
            (tp, offset)
            for tp in partitions if end[tp] > first[tp]
            for offset in (first[tp], end[tp] - 1)
        }
        foreign: dict[str, str] = {}
        for tp, offset, key in _records_at(consumer, sorted(probes, key=str), timeout_s):
            if tp.topic in foreign or (key and DEMO_KEY.match(key)):
                continue
            foreign[tp.topic] = (
                f"partition {tp.partition}: offset {offset} could not be read"
                if key == _UNREAD else
                f"partition {tp.partition}: offset {offset} has key {key!r}, not a demo saga id"
            )
        return foreign
    finally:
        consumer.close()


def _records_at(
    consumer: Any, probes: list[tuple[Any, int]], timeout_s: float
) -> Iterable[tuple[Any, int, str | None]]:
    """The key of the record at each (partition, offset); a probe that cannot be read (gone
    by retention, compacted away) is reported with the record found after it."""
    for tp, offset in probes:
        consumer.assign([tp])
        consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500, max_records=1).get(tp, [])
            if batch:
                record = batch[0]
                key = record.key.decode("utf-8", "replace") if record.key is not None else None
                yield tp, record.offset, key
                break
        else:
            log.warning("no record read from %s at offset %d in %.0f s", tp, offset, timeout_s)
            yield tp, offset, _UNREAD
