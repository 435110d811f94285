"""The collector: a Kafka consumer group over every matching topic, batched into the store.

The loop polls, decodes into a batch, and when the batch is full or old enough inserts it and
**only then** commits offsets. While the store is down it pauses every partition and keeps
polling (so the group does not rebalance), retrying with backoff; nothing unstored is
committed, and the store, not Kafka, decides where each partition resumes.

The pieces it drives: the partition table and topic watcher (``assignment``), the batch and
its rows (``batch``, ``decode``), the write in flight and the store's health (``inflight``),
the store writes (``writer``) and a Kafka client (``clients``).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from sagascope.collector.assignment import Partition, PartitionTable, TopicWatcher
from sagascope.collector.backoff import Backoff
from sagascope.collector.batch import Batch, add_records
from sagascope.collector.clients import CLIENTS, ConsumerClient, client_factory
from sagascope.collector.decode.correlate import Correlator
from sagascope.collector.decode.pool import DecodePool
from sagascope.collector.decode.redact import Redactor
from sagascope.collector.decode.rows import DecodeContext
from sagascope.collector.exceptions import BrokerError
from sagascope.collector.inflight import InFlight, InFlightWrite, StoreHealth, restore
from sagascope.collector.metrics import CollectorMetrics
from sagascope.collector.progress_log import ProgressLog, log_start
from sagascope.collector.rebalance import Rebalancing
from sagascope.collector.record_batches import as_records, record_count
from sagascope.collector.writer import salvage_batch, write_batch, write_progress
from sagascope.exceptions import ConfigError
from sagascope.settings import CollectorSettings
from sagascope.store import StoreError, StoreUnavailable
from sagascope.store.base import Store
from sagascope.store.schema import ensure_schema

log = logging.getLogger(__name__)

#: Values of the ``collector.start_from`` setting.
START_FROM = ("earliest", "latest")
_POLL_CAP_S = 0.2
#: Poll timeout cap while a batch is being written or decoded, so that its commit follows soon.
_POLL_CAP_WRITING_S = 0.02


def topic_pattern(include: str, exclude: str) -> re.Pattern[str]:
    """One regex (used with ``match``, as kafka-python does) for include-but-not-exclude."""
    for name, value in (("collector.include", include), ("collector.exclude", exclude)):
        try:
            re.compile(value)
        except re.error as exc:
            raise ConfigError(f"setting {name} is not a valid regex: {exc}") from exc
    guard = f"(?!(?:{exclude})\\Z)" if exclude else ""
    return re.compile(f"{guard}(?:{include or '.*'})\\Z")


def _check_settings(settings: CollectorSettings) -> None:
    if settings.batch_rows < 1:
        raise ConfigError("setting collector.batch_rows must be at least 1")
    if settings.flush_interval_s <= 0:
        raise ConfigError("setting collector.flush_interval_s must be positive")
    if settings.payload_cap_bytes < 1:
        raise ConfigError("setting collector.payload_cap_bytes must be at least 1")
    if not settings.group_id:
        raise ConfigError("setting collector.group_id must not be empty")
    if settings.decode_workers < 0:
        raise ConfigError("setting collector.decode_workers must be 0 (decode in-process) or more")
    if settings.client not in CLIENTS:
        raise ConfigError(f"setting collector.client must be one of {', '.join(CLIENTS)}")
    if settings.start_from not in START_FROM:
        raise ConfigError(f"setting collector.start_from must be one of {', '.join(START_FROM)}")


class Collector(Rebalancing):
    """Consume Kafka into the store. ``run(stop_event)`` in any thread, or ``start()``/``stop()``.

    Args:
        store: where rows go (its schema is created or migrated at start).
        bootstrap_servers: Kafka bootstrap servers.
        settings: the ``collector`` section of the settings.
        collector_id: names this instance in ``progress`` rows and the Kafka client id.
        consumer_config: extra consumer settings in the chosen client's own names
            (``collector.client``): kafka-python ``KafkaConsumer`` arguments or librdkafka
            properties (tests, TLS, SASL).
    """

    def __init__(
        self,
        store: Store,
        bootstrap_servers: str,
        settings: CollectorSettings,
        *,
        collector_id: str | None = None,
        consumer_config: Mapping[str, Any] | None = None,
    ) -> None:
        _check_settings(settings)
        if not bootstrap_servers:
            raise ConfigError("setting broker.bootstrap_servers is required to collect")
        self.store = store
        self.bootstrap_servers = bootstrap_servers
        self.settings = settings
        self.collector_id = collector_id or (
            f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self.pattern = topic_pattern(settings.include, settings.exclude)
        self.metrics = CollectorMetrics(self.collector_id)
        self._progress_log = ProgressLog(self.metrics, settings.progress_log_s)
        #: Port of the metrics endpoint once serving (``settings.metrics_port``), else None.
        self.metrics_port: int | None = None
        self._ctx = DecodeContext(
            Correlator(settings.correlation), Redactor(settings.redaction), settings.payload_cap_bytes
        )
        self._clients = client_factory(
            settings.client,
            bootstrap_servers,
            {
                "group_id": settings.group_id,
                "client_id": f"sagascope-collector-{self.collector_id}",
                "max_poll_interval_ms": settings.max_poll_interval_ms,
                "max_poll_records": settings.batch_rows,
                "session_timeout_ms": settings.session_timeout_ms,
                "heartbeat_interval_ms": max(100, min(3000, settings.session_timeout_ms // 3)),
            },
            dict(consumer_config or {}),
            self._decodes_elsewhere if settings.decode_workers > 0 else None,
        )
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._table = PartitionTable()
        self._batch = Batch()
        self._health = StoreHealth()
        #: The batch being inserted while the next one is decoded (healthy store only).
        self._writes: InFlightWrite | None = None
        #: The decoding processes (``settings.decode_workers``), started with the loop.
        self._decoder: DecodePool | None = None
        self._consumer: Any = None
        self._last_progress = 0.0
        self._caught_up_ms = 0
        self._subscribed: frozenset[str] = frozenset()
        self._watcher: TopicWatcher | None = None
        self._topics_seen: frozenset[str] | None = None
        #: True once the first assignment was positioned (tests and the demo wait on it).
        self.ready = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> threading.Thread:
        """Run in a daemon thread; returns it."""
        self._stop_event.clear()
        self._thread = threading.Thread(
            target=self.run, args=(self._stop_event,), name=f"collector-{self.collector_id}",
            daemon=True,
        )
        self._thread.start()
        return self._thread

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread started by ``start()`` (stores what it can first)."""
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def run(self, stop_event: threading.Event) -> None:
        """Consume until ``stop_event`` is set; never raises for broker or store trouble."""
        log_start(self.store, self.bootstrap_servers, self.settings)
        if self.settings.metrics_port:
            self.metrics_port = self.metrics.serve(self.settings.metrics_port)
            log.info("metrics: http://127.0.0.1:%d/metrics", self.metrics_port)
        self._writes = InFlightWrite(self.store, f"collector-writer-{self.collector_id}")
        if self.settings.decode_workers > 0:
            rules = (self.settings.correlation, self.settings.redaction, self.settings.payload_cap_bytes)
            # Its processes start at the first poll that brings a backlog (_start_decoders).
            self._decoder = DecodePool(
                rules, self.settings.decode_workers, name=f"sagascope-decoder-{self.collector_id}"
            )
        try:
            if not self._wait_for_schema(stop_event):
                return
            restart = Backoff(first_s=0.5)
            while not stop_event.is_set():
                self._consumer = self._connect(stop_event)
                if self._consumer is None:
                    return
                try:
                    self._loop(stop_event)
                except Exception:
                    # A bug or an unexpected client state must not end collection: start
                    # over from what the store holds, with a fresh consumer.
                    self.metrics.errors.labels("internal").inc()
                    log.exception("collector loop failed; restarting in %.1fs", restart.delay_s)
                    stop_event.wait(restart.failed())
                finally:
                    self._shutdown()
        finally:
            self._writes.close()
            self._writes = None
            if self._decoder is not None:
                self._decoder.close()
                self._decoder = None
            self.metrics.close()

    def _wait_for_schema(self, stop_event: threading.Event) -> bool:
        backoff = Backoff()
        while not stop_event.is_set():
            try:
                ensure_schema(self.store)
                return True
            except StoreError as exc:
                self.metrics.errors.labels("store").inc()
                log.warning("store not ready, retrying in %.1fs: %s", backoff.delay_s, exc)
                stop_event.wait(backoff.failed())
        return False

    def _connect(self, stop_event: threading.Event) -> ConsumerClient | None:
        backoff = Backoff(first_s=0.2)
        while not stop_event.is_set():
            try:
                consumer = self._clients.open_consumer()
            except BrokerError as exc:
                self.metrics.errors.labels("broker").inc()
                log.warning("broker unavailable, retrying in %.1fs: %s", backoff.delay_s, exc)
                stop_event.wait(backoff.failed())
                continue
            log.debug("collector %s connected to %s", self.collector_id, self.bootstrap_servers)
            self._subscribed = frozenset()
            if self._watcher is not None:
                self._watcher.stop()
            self._topics_seen = None
            self._watcher = TopicWatcher(
                self._clients.open_lister, self.settings.topic_refresh_s, self.metrics
            )
            self._watcher.start()
            return consumer
        return None

    def _shutdown(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        try:
            with self._lock:
                self._drain_decoded()
            self._finish_write(wait=True)
            if self._batch.rows and not self._health.outage:
                self._flush()
                self._finish_write(wait=True)
        except Exception:  # closing must not raise; unstored rows are read again next time
            log.exception("final flush failed")
        consumer, self._consumer = self._consumer, None
        with self._lock:
            self._batch = Batch()
            if self._writes is not None:
                self._writes.forget()
            self._table.clear()
            self._health = StoreHealth()
        try:
            consumer.close()
        except Exception:
            log.exception("consumer close failed")

    # -- the loop ----------------------------------------------------------------------

    def _loop(self, stop_event: threading.Event) -> None:
        settings = self.settings
        consumer = self._consumer
        writes = self._writes
        assert writes is not None
        while not stop_event.is_set():
            now = time.monotonic()
            if self._watcher is not None and self._watcher.topics is not self._topics_seen:
                self._subscribe(self._watcher.topics)
            if not self._subscribed:
                stop_event.wait(0.05)
                continue
            if self._table.unpositioned and self._health.backoff.due(now):
                self._position_pending()
            if writes.settled:
                self._finish_write(wait=False)
            # While a batch is being inserted the next may grow to twice the size, so that
            # reading and decoding go on meanwhile instead of waiting for the insert.
            room = settings.batch_rows * (2 if writes.current else 1) - self._batch.rows
            decoding = self._decoder is not None and self._decoder.pending_records > 0
            cap_s = _POLL_CAP_S if writes.current is None and not decoding else _POLL_CAP_WRITING_S
            timeout_s = min(max(self._next_deadline() - now, 0.0), cap_s)
            poll_started_ms = time.time_ns() // 1_000_000
            try:
                records = consumer.poll(timeout_s, max(room, 1))
            except BrokerError as exc:
                self.metrics.errors.labels("broker").inc()
                log.warning("poll failed: %s", exc)
                stop_event.wait(0.5)
                continue
            with self._lock:
                if self._decoder is not None and not self._decoder.started:
                    fetched = sum(record_count(items) for items in records.values())
                    self._decoder.start_on_backlog(fetched, settings.batch_rows // 2)
                for key, recs in records.items():
                    self._add(key, recs)
                self._apply_decoded()
            # A highwater mark may come from a fetch answered up to fetch_max_wait_ms before
            # this poll started: "caught up" holds only for records older than that.
            self._caught_up_ms = poll_started_ms - consumer.fetch_wait_ms
            now = time.monotonic()
            if self._health.backoff.due(now) and self._flush_due(now):
                if not writes.inserting or self._batch.rows >= 2 * settings.batch_rows:
                    self._flush()
            elif self._health.outage or room <= 0:
                consumer.pause(consumer.assignment())

    def _apply_decoded(self) -> None:
        """Apply what the decoding processes have answered; when they fall more than two
        batches behind, wait until they are one batch behind (they keep that much work
        queued, never running dry while the loop waits). Caller holds the lock."""
        decoder = self._decoder
        if decoder is not None and decoder.pending_records:
            rows = self.settings.batch_rows
            decoder.drain(self._batch, wait=decoder.pending_records > 2 * rows, keep=rows)

    def _subscribe(self, topics: frozenset[str] | None) -> None:
        """Subscribe to the topics matching include/exclude among ``topics``, if they changed.

        The topic list is matched here rather than by kafka-python's pattern subscription,
        whose single-member rejoin on a new topic was seen never to complete (Tansu).
        """
        self._topics_seen = topics
        if topics is None:
            return
        wanted = frozenset(t for t in topics if self.pattern.match(t))
        if wanted and wanted != self._subscribed:
            log.info("subscribing to %d topic(s): %s", len(wanted), sorted(wanted))
            self._consumer.subscribe(sorted(wanted), self)
            self._subscribed = wanted

    def _next_deadline(self) -> float:
        if self._health.outage:
            return self._health.backoff.retry_at
        base = self._batch.started if self._batch.rows else self._last_progress
        return base + self.settings.flush_interval_s

    def _flush_due(self, now: float) -> bool:
        if self._batch.rows >= self.settings.batch_rows:
            return True
        if self._batch.rows:
            return now - self._batch.started >= self.settings.flush_interval_s or self._health.outage
        return now - self._last_progress >= self.settings.flush_interval_s

    def _decodes_elsewhere(self, topic: str) -> bool:
        """Whether the decoding processes decode this topic's records (not the spans')."""
        return topic != self.settings.telemetry_topic

    def _add(self, key: Partition, records: list[Any]) -> None:
        state = self._table.positioned(key)
        if state is None:
            return  # fetched before positioning; read again after the seek
        self.metrics.consumed.labels(key.topic).inc(record_count(records))
        spans = not self._decodes_elsewhere(key.topic)
        if self._decoder is not None and not spans:
            self._decoder.submit(state, records, self._batch)
        else:
            add_records(self._batch, state, as_records(records), self._ctx, spans=spans)

    def _drain_decoded(self) -> None:
        """Add everything the decoding process still owes to the pending batch (before the
        batch or the partition states change other than by adding). Caller holds the lock."""
        if self._decoder is not None:
            self._decoder.drain(self._batch, wait=True)

    # -- storing -------------------------------------------------------------------------

    def _flush(self) -> None:
        """Store the pending batch, then progress, then commit; on failure pause and back off.

        While the store is healthy the insert runs in the writer thread and the loop decodes
        the next batch meanwhile; progress and commit follow in :meth:`_finish_write`. When
        the store has failed, the batch is retried here, synchronously (salvaged after
        repeated rejections).
        """
        assert self._writes is not None
        if self._writes.current is not None:
            self._finish_write(wait=True)
            if self._health.outage:
                return  # it failed and is the pending batch again, retried after the backoff
        started = time.monotonic()
        with self._lock:
            batch = self._batch
            if batch.rows and not self._health.outage and not self._health.rejections:
                self._batch = Batch()
                self._writes.submit(batch, self._table, started)
                return
            if not self._store_now(batch):
                return
            self._table.promote(batch.ranges)
            self._batch = Batch()
            offsets = self._table.take_commits(batch.ranges)
        progressed = self._write_progress()
        if self._health.outage and (batch.rows or progressed):
            self._recovered()
        self._commit(offsets)
        if batch.rows:
            self._count_stored(batch, started)

    def _store_now(self, batch: Batch) -> bool:
        """Store a batch the store failed before (salvaged after repeated rejections); False
        when it fails again. Caller holds the lock."""
        health = self._health
        try:
            if batch.rows and health.salvage_due:
                replaced = salvage_batch(self.store, batch, self._table.states)
                self.metrics.errors.labels("rejected_row").inc(replaced)
            elif batch.rows:
                write_batch(self.store, batch)
        except StoreError as exc:
            if not isinstance(exc, StoreUnavailable) and health.salvage_due:
                # Salvage stored part of the batch: start over from what the store holds.
                self._reposition()
            self._store_failed(exc)
            return False
        health.rejections = 0
        return True

    def _finish_write(self, *, wait: bool) -> None:
        """Settle the batch being written (from the loop): then progress, then commit."""
        writes = self._writes
        if writes is None or writes.current is None or (not wait and not writes.settled):
            return
        with self._lock:
            settled = self._settle_write()
            if settled is None:
                return
            offsets = self._table.take_commits(settled.batch.ranges)
        self._write_progress()
        self._commit(offsets)
        self._count_stored(settled.batch, settled.started)

    def _settle_write(self) -> InFlight | None:
        """Wait for the batch being written: it when stored, None when there was none or it
        failed (it is then the pending batch again). Caller holds the lock."""
        assert self._writes is not None
        inflight, error = self._writes.settle(self._table)
        if inflight is None or error is None:
            return inflight
        self._drain_decoded()
        self._batch = restore(inflight, self._batch, self._table, self._consumer.seek)
        if not isinstance(error, StoreError):
            raise error
        self._store_failed(error)
        return None

    def _commit(self, offsets: Mapping[Partition, int]) -> None:
        if offsets:
            self._consumer.commit(offsets, on_error=self._commit_failed)

    def _commit_failed(self, exc: Exception) -> None:
        self.metrics.errors.labels("commit").inc()
        log.warning("offset commit failed (store already holds the rows): %s", exc)

    def _count_stored(self, batch: Batch, started: float) -> None:
        elapsed = time.monotonic() - started
        self.metrics.batch_seconds.observe(elapsed)
        self.metrics.batch_rows.observe(batch.rows)
        self.metrics.count(self.metrics.stored, batch.consumed)
        self.metrics.count(self.metrics.parse_errors, batch.parse_errors)
        log.debug("stored batch rows=%d in %.3fs", batch.rows, elapsed)

    def _reposition(self) -> None:
        """Drop the pending batch and re-read every partition's position from the store."""
        self._drain_decoded()
        self._batch = Batch()
        self._health.rejections = 0
        self._consumer.pause(self._table.unposition_all())

    def _write_progress(self) -> bool:
        self._last_progress = time.monotonic()
        written = write_progress(
            self.store, self._consumer, self._table, self.metrics,
            self.settings.group_id, self.collector_id, self._caught_up_ms,
        )
        self._progress_log.tick()
        return written

    def _store_failed(self, exc: StoreError) -> None:
        self.metrics.errors.labels("store").inc()
        self.metrics.store_available.set(0)
        if self._health.failed(exc):
            log.warning("store unavailable, pausing partitions: %s", exc)
        else:
            log.debug("store still unavailable: %s", exc)
        self._consumer.pause(self._consumer.assignment())

    def _recovered(self) -> None:
        log.warning("store available again, resuming partitions")
        self._health.recovered()
        self.metrics.store_available.set(1)
        consumer = self._consumer
        consumer.resume([p for p in consumer.paused() if p not in self._table.unpositioned])
