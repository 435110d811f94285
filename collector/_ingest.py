"""Batches of decoded rows, per-partition positions, and writing both to the store.

The store is the source of truth for positions: on assignment the collector reads the highest
stored offset (and the last chain hash) of each partition and resumes right after it, so a
crash between insert and offset commit replays nothing into the tables. Inserts also carry a
dedup token derived from the offsets they hold, a second guard against a replayed batch.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sagascope.collector._decode import DecodeContext, decode_message, decode_span
from sagascope.store import StoreError, StoreUnavailable
from sagascope.store.audit import GENESIS, link_hash, row_digest, seal, sealed
from sagascope.store.base import Store, encode_rows
from sagascope.store.schema import MESSAGES
from sagascope.store.timetext import clickhouse_ms as ms_text

log = logging.getLogger(__name__)


@dataclass
class PartitionState:
    """Where one assigned partition stands: stored, and buffered in the pending batch."""

    topic: str
    partition: int
    #: Next offset to store (all below are stored); None until the first record when the
    #: store holds nothing for this partition (Kafka's committed offset or reset decides).
    stored_next: int | None
    stored_chain: str
    buffered_next: int | None = None
    buffered_chain: str = ""
    stored_kafka_ms: int = 0
    buffered_kafka_ms: int = 0
    #: Next offset after the records handed to the decoding process and not yet buffered
    #: (None when nothing is in flight there).
    submitted_next: int | None = None

    def __post_init__(self) -> None:
        self.buffered_next = self.stored_next
        self.buffered_chain = self.stored_chain

    def promote(self) -> None:
        """The pending batch was stored."""
        self.stored_next = self.buffered_next
        self.stored_chain = self.buffered_chain
        self.stored_kafka_ms = self.buffered_kafka_ms

    def rollback(self) -> None:
        """The pending batch was dropped."""
        self.submitted_next = None
        self.buffered_next = self.stored_next
        self.buffered_chain = self.stored_chain
        self.buffered_kafka_ms = self.stored_kafka_ms

    def mark(self) -> Mark:
        """Where buffering stands now (taken when a batch is handed to the writer)."""
        return (self.buffered_next, self.buffered_chain, self.buffered_kafka_ms)

    def promote_to(self, mark: Mark) -> None:
        """Rows up to ``mark`` were stored (later rows may be buffered already)."""
        self.stored_next, self.stored_chain, self.stored_kafka_ms = mark

    def rollback_to(self, mark: Mark | None) -> None:
        """Forget what was buffered after ``mark`` (after what is stored when None)."""
        if mark is None:
            self.rollback()
        else:
            self.submitted_next = None
            self.buffered_next, self.buffered_chain, self.buffered_kafka_ms = mark


#: (next offset, chain hash, Kafka time) of one partition at some point of buffering.
Mark = tuple[int | None, str, int]


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
    #: (topic, partition) -> [first offset, last offset]
    ranges: dict[tuple[str, int], list[int]] = field(default_factory=dict)
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
        import orjson

        for chunk in self.encoded:
            self.messages.extend(orjson.loads(line) for line in chunk.data.splitlines() if line)
        self.encoded = []

    def dedup_token(self, table: str) -> str:
        spans = ",".join(f"{t}/{p}/{a}-{b}" for (t, p), (a, b) in sorted(self.ranges.items()))
        return hashlib.sha256(f"{table}|{spans}".encode()).hexdigest()

    def drop(self, partitions: Collection[tuple[str, int]]) -> None:
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
        for record in records:
            offset = record.offset
            if next_offset is not None and offset < next_offset:
                continue  # already stored or buffered: a replayed fetch
            row = decode_row(record, ctx, ingest_ms, ingest_text, spans=spans)
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
    state.buffered_next = next_offset
    state.buffered_chain = head
    state.buffered_kafka_ms = kafka_ms
    topic = state.topic
    key = (topic, state.partition)
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


def decode_row(
    record: Any, ctx: DecodeContext, ingest_ms: int, ingest_text: str, *, spans: bool
) -> dict[str, Any]:
    """The ``spans`` or ``messages`` row of a record; if decoding fails after all (it is
    total; this is the last line of defence), a minimal row carrying the failure."""
    try:
        if spans:
            return decode_span(record, ctx, ingest_ms)
        return decode_message(record, ctx, ingest_ms, ingest_text)
    except Exception as exc:
        log.exception(
            "decode failed topic=%s partition=%d offset=%d",
            record.topic, record.partition, record.offset,
        )
        return fallback_row(record, ingest_ms, f"collector could not decode: {exc!r}", spans=spans)


def fallback_row(record: Any, ingest_ms: int, error: str, *, spans: bool) -> dict[str, Any]:
    """A minimal row for a record the decoder failed on, so that nothing is dropped."""
    now = ms_text(ingest_ms)
    if spans:
        return {
            "topic": record.topic, "partition": record.partition, "offset": record.offset,
            "ingest_time": now, "parse_error": error,
        }
    value = record.value or b""
    return {
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
        "kafka_time": now, "event_time": now, "ingest_time": now, "kafka_key": "",
        "trace_id": "", "span_id": "", "saga_id": "", "saga_type": "", "message_id": "",
        "causation_id": "", "kind": "", "type": "", "source": "", "step": "",
        "saga_status": "", "compensates": "", "headers": {}, "payload": "",
        "payload_size": len(value), "payload_sha256": hashlib.sha256(value).hexdigest(),
        "payload_truncated": True, "correlation": "none", "parse_error": error,
    }


def write_batch(store: Store, batch: Batch) -> None:
    """Insert the batch: messages, then spans, each one atomic insert with its dedup token."""
    if batch.encoded:
        data = b"".join(chunk.data for chunk in batch.encoded)
        if batch.messages:
            data = encode_rows(batch.messages) + data
        store.insert_encoded(
            "messages", MESSAGES.column_names(), data, dedup_token=batch.dedup_token("messages")
        )
    elif batch.messages:
        _insert_uniform(store, "messages", batch.messages, batch.dedup_token("messages"))
    if batch.spans:
        _insert_uniform(store, "spans", batch.spans, batch.dedup_token("spans"))


def _insert_uniform(store: Store, table: str, rows: list[dict[str, Any]], token: str) -> None:
    # Fallback rows carry fewer columns; JSONEachRow fills missing ones with defaults, but
    # the column list comes from the first row, so lead with a full one.
    if len(rows[0]) < max(len(r) for r in rows):
        rows = sorted(rows, key=len, reverse=True)
    store.insert(table, rows, dedup_token=token)


def stored_positions(
    store: Store, partitions: Collection[tuple[str, int]]
) -> dict[tuple[str, int], tuple[int, str]]:
    """(topic, partition) -> (next offset to store, last chain hash), for partitions with rows."""
    topics = sorted({t for t, _ in partitions})
    if not topics:
        return {}
    found: dict[tuple[str, int], tuple[int, str]] = {}
    for t, p, max_offset, last_chain in store.query(
        "SELECT topic, partition, max(offset), argMaxIf(chain_hash, offset, notEmpty(chain_hash)) "
        "FROM messages "
        "WHERE topic IN {topics:Array(String)} GROUP BY topic, partition",
        {"topics": topics},
    ).rows:
        found[(t, int(p))] = (int(max_offset) + 1, last_chain if sealed(last_chain) else GENESIS)
    for t, p, max_offset in store.query(
        "SELECT topic, partition, max(offset) FROM spans "
        "WHERE topic IN {topics:Array(String)} GROUP BY topic, partition",
        {"topics": topics},
    ).rows:
        key = (t, int(p))
        if key not in found or found[key][0] <= int(max_offset):
            found[key] = (int(max_offset) + 1, found.get(key, (0, GENESIS))[1])
    return {k: v for k, v in found.items() if k in set(partitions)}


def progress_rows(
    group_id: str,
    collector_id: str,
    states: Iterable[PartitionState],
    highwaters: dict[tuple[str, int], int | None],
    caught_up_ms: int,
) -> list[dict[str, Any]]:
    """``progress`` rows: per partition, what is stored and until when it has been read."""
    now = ms_text(time.time_ns() // 1_000_000)
    rows = []
    for st in states:
        if st.stored_next is None:
            continue
        key = (st.topic, st.partition)
        highwater = highwaters.get(key)
        end = st.stored_next if highwater is None else max(highwater, st.stored_next)
        caught_up = highwater is not None and st.stored_next >= highwater
        rows.append({
            "group_id": group_id,
            "collector_id": collector_id,
            "topic": st.topic,
            "partition": st.partition,
            "stored_offset": st.stored_next,
            "end_offset": end,
            "read_until": ms_text(caught_up_ms if caught_up else st.stored_kafka_ms),
            "updated_at": now,
        })
    return rows


_SALVAGE_CHUNK = 200


def salvage_batch(
    store: Store, batch: Batch, states: Mapping[tuple[str, int], PartitionState]
) -> int:
    """Store a batch the store keeps rejecting, in small chunks and then row by row.

    A row is replaced by a minimal row carrying the store's error only when its own insert
    fails while that replacement then goes in (the store is healthy, the row is at fault).
    Returns the number of rows replaced. Raises StoreError when the store fails otherwise;
    part of the batch may then be stored, so the caller re-reads positions from the store.
    """
    replaced = 0
    batch.materialize()
    for table, rows in (("messages", batch.messages), ("spans", batch.spans)):
        chained = table == "messages"
        by_partition: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for row in rows:
            by_partition.setdefault((row["topic"], row["partition"]), []).append(row)
        for key, part_rows in by_partition.items():
            head = states[key].stored_chain
            for i in range(0, len(part_rows), _SALVAGE_CHUNK):
                chunk = part_rows[i : i + _SALVAGE_CHUNK]
                if _try_insert(store, table, chunk, head if chained else None) is None:
                    head = chunk[-1].get("chain_hash", head)
                    continue
                for row in chunk:
                    error = _try_insert(store, table, [row], head if chained else None)
                    if error is None:
                        head = row.get("chain_hash", head)
                        continue
                    log.error(
                        "store rejected row topic=%s partition=%s offset=%s",
                        row["topic"], row["partition"], row["offset"],
                    )
                    stand_in = _stand_in(row, error, spans=not chained)
                    if chained:
                        seal([stand_in], head)
                        head = stand_in["chain_hash"]
                    store.insert(table, [stand_in], dedup_token=_row_token(table, [stand_in]))
                    replaced += 1
            if chained:
                states[key].buffered_chain = head
    return replaced


def _try_insert(
    store: Store, table: str, rows: list[dict[str, Any]], head: str | None
) -> str | None:
    """Insert rows (re-chained onto ``head`` when given); the store's error if it rejects them."""
    if head is not None:
        seal(rows, head)
    try:
        store.insert(table, rows, dedup_token=_row_token(table, rows))
    except StoreUnavailable:
        raise
    except StoreError as exc:
        return str(exc)
    return None


def _row_token(table: str, rows: list[dict[str, Any]]) -> str:
    first, last = rows[0], rows[-1]
    return hashlib.sha256(
        f"{table}|{first['topic']}/{first['partition']}/{first['offset']}-{last['offset']}|"
        f"{last.get('parse_error', '')}".encode()
    ).hexdigest()


def _stand_in(row: dict[str, Any], rejection: str, *, spans: bool) -> dict[str, Any]:
    """A minimal row in place of one the store rejects, with the store's error."""
    error = f"the store rejected this row: {rejection}"[:2000]
    ingest_ms = time.time_ns() // 1_000_000
    stand_in = fallback_row(_RecordKey(row), ingest_ms, error, spans=spans)
    if not spans:
        for name in ("kafka_time", "event_time", "ingest_time", "payload_size", "payload_sha256"):
            stand_in[name] = row[name]
    return stand_in


class _RecordKey:
    """Just enough of a ConsumerRecord for fallback_row."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.topic = row["topic"]
        self.partition = row["partition"]
        self.offset = row["offset"]
        self.value = b""
