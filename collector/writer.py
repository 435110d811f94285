"""Writing to the store: a batch (one atomic insert per table, with its dedup token), the
salvage of a batch the store keeps rejecting, ``progress`` rows, and the stored positions.

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
from typing import Any

from sagascope.collector.assignment import Partition, PartitionState, PartitionTable
from sagascope.collector.batch import Batch
from sagascope.collector.decode.rows import fallback_row
from sagascope.collector.metrics import CollectorMetrics
from sagascope.store import StoreError, StoreUnavailable
from sagascope.store.audit import GENESIS, seal, sealed
from sagascope.store.base import Store, encode_rows
from sagascope.store.schema import MESSAGES
from sagascope.store.timetext import clickhouse_ms as ms_text

log = logging.getLogger(__name__)


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
    store: Store, partitions: Collection[Partition]
) -> dict[Partition, tuple[int, str]]:
    """Partition -> (next offset to store, last chain hash), for partitions with rows."""
    topics = sorted({t for t, _ in partitions})
    if not topics:
        return {}
    found: dict[Partition, tuple[int, str]] = {}
    for t, p, max_offset, last_chain in store.query(
        "SELECT topic, partition, max(offset), argMaxIf(chain_hash, offset, notEmpty(chain_hash)) "
        "FROM messages "
        "WHERE topic IN {topics:Array(String)} GROUP BY topic, partition",
        {"topics": topics},
    ).rows:
        found[Partition(t, int(p))] = (int(max_offset) + 1, last_chain if sealed(last_chain) else GENESIS)
    for t, p, max_offset in store.query(
        "SELECT topic, partition, max(offset) FROM spans "
        "WHERE topic IN {topics:Array(String)} GROUP BY topic, partition",
        {"topics": topics},
    ).rows:
        key = Partition(t, int(p))
        if key not in found or found[key][0] <= int(max_offset):
            found[key] = (int(max_offset) + 1, found.get(key, (0, GENESIS))[1])
    return {k: v for k, v in found.items() if k in set(partitions)}


def stored_starts(store: Store, partitions: Collection[Partition]) -> dict[Partition, int]:
    """Partition -> first offset the store collected of it (``progress.start_offset``, or the
    lowest stored offset), for partitions the store knows; kept across restarts so that rows
    removed from a partition's start still show as removed."""
    topics = sorted({t for t, _ in partitions})
    if not topics:
        return {}
    starts: dict[Partition, int] = {}
    for t, p, first in (
        *store.query(
            "SELECT topic, partition, min(offset) FROM messages "
            "WHERE topic IN {topics:Array(String)} GROUP BY topic, partition",
            {"topics": topics},
        ).rows,
        *store.query(
            "SELECT topic, partition, min(start_offset) FROM progress FINAL "
            "WHERE topic IN {topics:Array(String)} GROUP BY topic, partition",
            {"topics": topics},
        ).rows,
    ):
        key = Partition(t, int(p))
        starts[key] = min(int(first), starts.get(key, int(first)))
    wanted = set(partitions)
    return {k: v for k, v in starts.items() if k in wanted}


def progress_rows(
    group_id: str,
    collector_id: str,
    states: Iterable[PartitionState],
    highwaters: Mapping[Partition, int | None],
    caught_up_ms: int,
) -> list[dict[str, Any]]:
    """``progress`` rows: per partition, what is stored and until when it has been read."""
    now = ms_text(time.time_ns() // 1_000_000)
    rows = []
    for st in states:
        if st.stored_next is None:
            continue
        highwater = highwaters.get(st.key)
        end = st.stored_next if highwater is None else max(highwater, st.stored_next)
        caught_up = highwater is not None and st.stored_next >= highwater
        rows.append({
            "group_id": group_id,
            "collector_id": collector_id,
            "topic": st.topic,
            "partition": st.partition,
            "stored_offset": st.stored_next,
            "start_offset": st.stored_next if st.start_offset is None else st.start_offset,
            "end_offset": end,
            "read_until": ms_text(caught_up_ms if caught_up else st.stored_kafka_ms),
            "updated_at": now,
        })
    return rows


_SALVAGE_CHUNK = 200


def salvage_batch(
    store: Store, batch: Batch, states: Mapping[Partition, PartitionState]
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
        by_partition: dict[Partition, list[dict[str, Any]]] = {}
        for row in rows:
            by_partition.setdefault(Partition(row["topic"], row["partition"]), []).append(row)
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
    stand_in = fallback_row(_RowRecord(row), ingest_ms, error, spans=spans)
    if not spans:
        for name in ("kafka_time", "event_time", "ingest_time", "payload_size", "payload_sha256"):
            stand_in[name] = row[name]
    return stand_in


class _RowRecord:
    """Just enough of a record, from its stored row, for fallback_row."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.topic = row["topic"]
        self.partition = row["partition"]
        self.offset = row["offset"]
        self.value = b""


def write_progress(
    store: Store,
    consumer: Any,
    table: PartitionTable,
    metrics: CollectorMetrics,
    group_id: str,
    collector_id: str,
    caught_up_ms: int,
) -> bool:
    """Refresh lag and stored-offset metrics and write the ``progress`` rows; whether written.

    A partition with nothing stored yet takes its position from the consumer, unless records
    read from it are still decoding (that position would claim them stored).
    """
    highwaters: dict[Partition, int | None] = {}
    for key, st in list(table.states.items()):
        try:
            if (
                st.stored_next is None
                and st.submitted_next is None  # nothing read from it is still decoding
                and key not in table.unpositioned
            ):
                position = consumer.position(key)
                if position is not None and st.buffered_next is None:
                    st.stored_next = st.buffered_next = position
                    if st.start_offset is None:  # nothing before it is this store's to hold
                        st.start_offset = position
            highwaters[key] = consumer.highwater(key)
        except Exception:  # revoked meanwhile, or no position yet
            continue
        if st.stored_next is not None:
            metrics.stored_offset.labels(key.topic, str(key.partition)).set(st.stored_next)
            highwater = highwaters[key]
            if highwater is not None:
                metrics.lag.labels(key.topic, str(key.partition)).set(max(highwater - st.stored_next, 0))
    rows = progress_rows(group_id, collector_id, list(table.states.values()), highwaters, caught_up_ms)
    if not rows:
        return False
    try:
        store.insert("progress", rows)
    except StoreError as exc:
        metrics.errors.labels("progress").inc()
        log.warning("progress write failed: %s", exc)
        return False
    return True
