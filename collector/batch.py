"""The batch being filled: decoded rows, the offset range each partition contributes, and
the per-topic counts; records of one partition are added as one link of its hash chain."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sagascope.collector.assignment import Partition, PartitionState
from sagascope.collector.decode.rows import DecodeContext, decode_row, fallback_row
from sagascope.collector.record_batches import DamagedBatch, Record
from sagascope.store.audit import link_hash, row_digest
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


def add_records(
    batch: Batch,
    state: PartitionState,
    records: Iterable[Any],
    ctx: DecodeContext,
    *,
    spans: bool,
) -> None:
    """Decode records of one partition into the batch: one link of its hash chain."""
    ingest_ms = time.time_ns() // 1_000_000
    ingest_text = ms_text(ingest_ms)
    append = batch.spans.append if spans else batch.messages.append
    next_offset = state.buffered_next
    head = state.buffered_chain
    kafka_ms = state.buffered_kafka_ms
    first: int | None = None
    errors = 0
    n = 0
    digests: list[str] = []
    last: dict[str, Any] | None = None
    try:
        for record, damage in _with_damage(state, records):
            offset = record.offset
            if next_offset is not None and offset < next_offset:
                continue  # already stored or buffered: a replayed fetch
            if damage is None:
                row = decode_row(record, ctx, ingest_ms, ingest_text, spans=spans)
            else:
                row = fallback_row(record, ingest_ms, damage, spans=spans)
            if not spans:
                digests.append(row_digest(row))
                row["chain_hash"] = ""
            append(row)
            last = row
            if row["parse_error"]:
                errors += 1
            n += 1
            if first is None:
                first = offset
            next_offset = offset + 1
            timestamp = record.timestamp
            if timestamp is not None and timestamp >= 0:
                kafka_ms = timestamp
    finally:  # what was appended is accounted for, even if something above raised
        if digests and last is not None:  # seal the link on its last row
            head = link_hash(head, digests)
            last["chain_hash"] = head
        if first is not None and next_offset is not None:
            account(
                batch, state, first=first, next_offset=next_offset, head=head,
                kafka_ms=kafka_ms, rows=n, errors=errors,
            )


def _with_damage(state: PartitionState, records: Iterable[Any]) -> Iterator[tuple[Any, str | None]]:
    """(record, None) per record; (an empty record, what is wrong) per offset of a damaged
    batch, whose bytes the client could not give (each offset is stored with the damage)."""
    for record in records:
        if type(record) is DamagedBatch:
            for offset in range(record.base_offset, record.last_offset + 1):
                empty = Record(state.topic, state.partition, offset, None, None, None, None)
                yield empty, record.message
        else:
            yield record, None


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
