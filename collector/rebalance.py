"""What the collector does when partitions move: position new ones from the store, store what
is pending before revoked ones go, and drop lost ones without storing.

The client adapters' rebalance listeners call only ``assigned``, ``revoked`` and ``lost``; they
run inside the consumer's poll, on the loop's thread, so they may use the consumer but make no
blocking commit (the loop commits what they settle).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from sagascope.collector.assignment import Partition, PartitionTable
from sagascope.collector.batch import Batch
from sagascope.collector.inflight import InFlight, StoreHealth
from sagascope.collector.metrics import CollectorMetrics
from sagascope.collector.writer import stored_positions, stored_starts, write_batch
from sagascope.settings import CollectorSettings
from sagascope.store import StoreError
from sagascope.store.base import Store

log = logging.getLogger(__name__)


class Rebalancing:
    """The collector's rebalance handling (a part of ``Collector``, kept in its own module)."""

    store: Store
    collector_id: str
    settings: CollectorSettings
    metrics: CollectorMetrics
    ready: threading.Event
    _lock: threading.RLock
    _consumer: Any
    _table: PartitionTable
    _batch: Batch
    _health: StoreHealth

    if TYPE_CHECKING:  # the loop's own, in consumer.Collector
        def _drain_decoded(self) -> None: ...

        def _settle_write(self) -> InFlight | None: ...

        def _count_stored(self, batch: Batch, started: float) -> None: ...

    def assigned(self, partitions: list[Partition]) -> None:
        with self._lock:
            self.metrics.rebalances.inc()
            log.info("assigned %d partition(s) to %s", len(partitions), self.collector_id)
            # Nothing is fetched until the store says where each partition resumes.
            self._consumer.pause(self._table.assign(partitions))
            self._position_pending()

    def _position_pending(self) -> None:
        """Seek newly assigned partitions past what the store holds; retried while it is down."""
        with self._lock:
            pending = sorted(self._table.unpositioned)
            if not pending:
                return
            try:
                found = stored_positions(self.store, pending)
                starts = stored_starts(self.store, pending)
            except StoreError as exc:
                self.metrics.errors.labels("position").inc()
                log.warning("cannot read stored positions, retrying: %s", exc)
                self._health.backoff.failed()
                return
            consumer = self._consumer
            start_from = self.settings.start_from
            positions = self._table.position(found, starts)
            for key, next_offset in positions:
                # The store is the truth: a partition it holds nothing of starts at
                # start_from, never at an offset the group committed into another store.
                if next_offset is None:
                    consumer.seek_to_start(key, start_from)
                else:
                    consumer.seek(key, next_offset)
            log_positions(positions, start_from)
            self.metrics.assigned_partitions.set(len(self._table))
            if not self._health.outage:
                consumer.resume(pending)
            self.ready.set()

    def revoked(self, partitions: list[Partition]) -> None:
        """Partitions move to another member: store what is pending for them first."""
        with self._lock:
            self._settle_before_move()
            batch = self._batch
            if batch.rows and not self._health.outage:
                try:
                    write_batch(self.store, batch)
                    self._table.promote(batch.ranges)
                    self.metrics.count(self.metrics.stored, batch.consumed)
                    self.metrics.count(self.metrics.parse_errors, batch.parse_errors)
                    self._batch = Batch()
                except StoreError as exc:
                    self.metrics.errors.labels("store").inc()
                    log.warning("could not store before revocation; the new owner rereads: %s", exc)
            self._forget(partitions, rollback=True)
            for key in partitions:
                for gauge in (self.metrics.lag, self.metrics.stored_offset):
                    with contextlib.suppress(KeyError):
                        gauge.remove(key.topic, str(key.partition))
            self.metrics.assigned_partitions.set(len(self._table))
            log.info("revoked %d partition(s) from %s", len(partitions), self.collector_id)

    def lost(self, partitions: list[Partition]) -> None:
        """Someone else may own these already: drop, never store."""
        with self._lock:
            self._settle_before_move()
            self._forget(partitions, rollback=False)

    def _forget(self, partitions: Collection[Partition], *, rollback: bool) -> None:
        if self._batch.rows:
            self._batch.drop(partitions)
            if rollback:
                self._table.rollback(partitions)
            if not self._batch.rows:
                self._batch = Batch()
        self._table.revoke(partitions)

    def _settle_before_move(self) -> None:
        """Settle decoding and the batch being written before partitions move (commit is left
        to the loop: a rebalance callback must not make blocking consumer calls)."""
        self._drain_decoded()
        try:
            settled = self._settle_write()
        except Exception:
            log.exception("batch write failed before a rebalance")
            return
        if settled is not None:
            self._table.commit_later(settled.batch.ranges)
            self._count_stored(settled.batch, settled.started)


def log_positions(positions: list[tuple[Partition, int | None]], start_from: str) -> None:
    """One line per topic: its partitions and where each starts (the next stored offset, or
    ``start_from`` for a partition the store holds nothing of)."""
    by_topic: dict[str, list[str]] = {}
    for key, next_offset in positions:
        where = f"{next_offset} (stored)" if next_offset is not None else f"{start_from} (nothing stored)"
        by_topic.setdefault(key.topic, []).append(f"{key.partition}@{where}")
    for topic, parts in sorted(by_topic.items()):
        log.info("topic %s: partition@start %s", topic, ", ".join(parts))
