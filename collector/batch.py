"""The batch being filled: decoded rows, the offset range each partition contributes, and
the per-topic counts; records of one partition are added as one link of its hash chain."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from sagascope.collector.assignment import Partition, PartitionState
from sagascope.collector.decode.rows import DecodeContext, decode_row, fallback_row
from sagascope.collector.record_batches import DamagedBatch, Record
from sagascope.store.audit import seal
from sagascope.store.timetext import clickhouse_ms as ms_text


@dataclass(frozen=True)
class EncodedChunk:
    """``messages`` rows of one partition already encoded for the insert (JSONEachRow)."""

    topic: str
    partition: int
    data: bytes
    rows: int


@dataclass
class Batch:
    """Rows waiting to be stored, with the offset range each partition contributes."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    #: ``messages`` rows decoded by the decoding process, in the order they were buffered.
    encoded: list[EncodedChunk] = field(default_factory=list)
    #: partition -> [first offset, last offset]
    ranges: dict[Partition, list[int]] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)
    parse_errors: dict[str, int] = field(default_factory=dict)
    started: float = 0.0

    @property
    def rows(self) -> int:
        return len(self.messages) + len(self.spans) + sum(c.rows for c in self.encoded)

    def materialize(self) -> None:
        """Turn encoded chunks back into row dicts (for the rare row-by-row salvage)."""
        if not self.encoded:
            return
        for chunk in self.encoded:
            self.messages.extend(orjson.loads(line) for line in chunk.data.splitlines() if line)
        self.encoded = []

    def dedup_token(self, table: str) -> str:
        spans = ",".join(f"{t}/{p}/{a}-{b}" for (t, p), (a, b) in sorted(self.ranges.items()))
        return hashlib.sha256(f"{table}|{spans}".encode()).hexdigest()

    def drop(self, partitions: Collection[Partition]) -> None:
        """Forget the rows of partitions this collector no longer owns."""
        if not partitions:
            return
        gone = set(partitions)
        self.messages = [r for r in self.messages if (r["topic"], r["partition"]) not in gone]
        self.spans = [r for r in self.spans if (r["topic"], r["partition"]) not in gone]
        self.encoded = [c for c in self.encoded if (c.topic, c.partition) not in gone]
        for key in gone:
            self.ranges.pop(key, None)


@dataclass(slots=True)
class Link:
    """The rows decoded from records of one partition, in offset order: one link of its chain
    (not yet sealed)."""

    rows: list[dict[str, Any]]
    #: Rows with a parse error.
    errors: int
    #: Offset of the first row, and the offset after the last (both -1 without rows).
    first: int
    next_offset: int
    #: Kafka time of the latest record that has one; None if none has.
    kafka_ms: int | None


def decode_link(
    topic: str,
    partition: int,
    records: Iterable[Any],
    floor: int,
    ctx: DecodeContext,
    ingest_ms: int,
    *,
    spans: bool,
) -> Link:
    """Decode the records of one partition at offsets from ``floor`` on, each offset once:
    the one loop of every decode path (in the collector thread and in the decoding processes).

    ``records`` come in offset order as record objects, :data:`Fields` tuples, or
    damaged batches (:class:`DamagedBatch`), whose offsets become rows carrying the damage.
    """
    ingest_text = ms_text(ingest_ms)
    rows: list[dict[str, Any]] = []
    append = rows.append
    errors = 0
    kafka_ms = None
    for item in records:
        if type(item) is DamagedBatch:
            for offset in range(max(item.base_offset, floor), item.last_offset + 1):
                empty = Record(topic, partition, offset, None, None, None, None)
                row = fallback_row(empty, ingest_ms, item.message, spans=spans)
                append(row)
                if row["parse_error"]:
                    errors += 1
            floor = max(floor, item.last_offset + 1)
            continue
        record = Record(topic, partition, *item) if type(item) is tuple else item
        offset = record.offset
        if offset < floor:
            continue  # already stored or buffered: a replayed fetch
        row = decode_row(record, ctx, ingest_ms, ingest_text, spans=spans)
        append(row)
        if row["parse_error"]:
            errors += 1
        floor = offset + 1
        timestamp = record.timestamp
        if timestamp is not None and timestamp >= 0:
            kafka_ms = timestamp
    if not rows:
        return Link(rows, 0, -1, -1, kafka_ms)
    return Link(rows, errors, rows[0]["offset"], floor, kafka_ms)


def add_records(
    batch: Batch,
    state: PartitionState,
    records: Iterable[Any],
    ctx: DecodeContext,
    *,
    spans: bool,
) -> None:
    """Decode records of one partition into the batch: one link of its hash chain."""
    floor = -1 if state.buffered_next is None else state.buffered_next
    link = decode_link(
        state.topic, state.partition, records, floor, ctx, time.time_ns() // 1_000_000,
        spans=spans,
    )
    if not link.rows:
        return
    head = state.buffered_chain
    if spans:
        batch.spans.extend(link.rows)
    else:
        head = seal(link.rows, head)
        batch.messages.extend(link.rows)
    account(
        batch, state, first=link.first, next_offset=link.next_offset, head=head,
        kafka_ms=state.buffered_kafka_ms if link.kafka_ms is None else link.kafka_ms,
        rows=len(link.rows), errors=link.errors,
    )


def account(
    batch: Batch,
    state: PartitionState,
    *,
    first: int,
    next_offset: int,
    head: str,
    kafka_ms: int,
    rows: int,
    errors: int,
) -> None:
    """Record in ``batch`` and ``state`` that a partition's rows first..next_offset-1 (one
    link of its chain, ending in ``head``) were added to the batch."""
    if state.start_offset is None:  # the first record collected of a partition
        state.start_offset = first
    state.buffered_next = next_offset
    state.buffered_chain = head
    state.buffered_kafka_ms = kafka_ms
    topic = state.topic
    key = Partition(topic, state.partition)
    span = batch.ranges.get(key)
    if span is None:
        batch.ranges[key] = [first, next_offset - 1]
    else:
        span[1] = next_offset - 1
    if rows:
        if not batch.started:
            batch.started = time.monotonic()
        batch.consumed[topic] = batch.consumed.get(topic, 0) + rows
        if errors:
            batch.parse_errors[topic] = batch.parse_errors.get(topic, 0) + errors
