"""The collector: a Kafka consumer group over every matching topic, batched into the store.

The loop polls, decodes into a batch, and when the batch is full or old enough inserts it and
**only then** commits offsets. While the store is down it pauses every partition and keeps
polling (so the group does not rebalance), retrying with backoff; nothing unstored is
committed, and the store, not Kafka, decides where each partition resumes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kafka import ConsumerRebalanceListener
from sagascope.collector._correlate import Correlator
from sagascope.collector._decode import DecodeContext
from sagascope.collector._decoder import DecodePool
from sagascope.collector._ingest import (
    Batch,
    Mark,
    PartitionState,
    add_records,
    progress_rows,
    salvage_batch,
    stored_positions,
    write_batch,
)
from sagascope.collector._metrics import CollectorMetrics
from sagascope.collector._records import hand_over_batches, record_count
from sagascope.collector._redact import Redactor
from sagascope.store import StoreError, StoreUnavailable
from sagascope.store.base import Store
from sagascope.store.schema import ensure_schema

from sagascope.exceptions import ConfigError
from sagascope.settings import CollectorSettings

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 5.0
_POLL_CAP_S = 0.2
#: Poll timeout cap while a batch is being written, so that its commit follows soon.
_POLL_CAP_WRITING_S = 0.02
#: Consecutive rejections of one batch (errors other than StoreUnavailable) before it is
#: stored row by row, so that one row the store refuses cannot block a partition forever.
_SALVAGE_AFTER = 3


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


@dataclass
class _InFlight:
    """A batch the writer thread is inserting, and where each of its partitions ends."""

    batch: Batch
    marks: dict[tuple[str, int], Mark]
    future: Future[None]
    started: float


class Collector:
    """Consume Kafka into the store. ``run(stop_event)`` in any thread, or ``start()``/``stop()``.

    Args:
        store: where rows go (its schema is created or migrated at start).
        bootstrap_servers: Kafka bootstrap servers.
        settings: the ``collector`` section of the settings.
        collector_id: names this instance in ``progress`` rows and the Kafka client id.
        consumer_config: extra kafka-python ``KafkaConsumer`` arguments (tests, TLS, SASL).
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
        #: Port of the metrics endpoint once serving (``settings.metrics_port``), else None.
        self.metrics_port: int | None = None
        self._ctx = DecodeContext(
            Correlator(settings.correlation), Redactor(settings.redaction), settings.payload_cap_bytes
        )
        self._consumer_config = dict(consumer_config or {})
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._states: dict[Any, PartitionState] = {}
        self._unpositioned: set[Any] = set()
        self._batch = Batch()
        #: The batch being inserted while the next one is decoded (healthy store only).
        self._inflight: _InFlight | None = None
        self._writer: ThreadPoolExecutor | None = None
        #: The decoding processes (``settings.decode_workers``), started with the loop.
        self._decoder: DecodePool | None = None
        #: Offsets stored by a write settled in a rebalance callback, to commit from the loop.
        self._pending_commit: dict[Any, int] = {}
        self._consumer: Any = None
        self._outage = False
        self._retry_at = 0.0
        self._backoff_s = 0.1
        self._last_progress = 0.0
        self._caught_up_ms = 0
        self._fetch_wait_ms = 500
        self._rejections = 0
        self._subscribed: frozenset[str] = frozenset()
        #: Lists the broker's topics every topic_refresh_s on its own connection (a metadata
        #: request on the loop's connection waits behind fetches: ~0.5 s stalls).
        self._watcher: _TopicWatcher | None = None
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
        if self.settings.metrics_port:
            self.metrics_port = self.metrics.serve(self.settings.metrics_port)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"collector-writer-{self.collector_id}")
        if self.settings.decode_workers > 0:
            rules = (self.settings.correlation, self.settings.redaction, self.settings.payload_cap_bytes)
            self._decoder = DecodePool(
                rules, self.settings.decode_workers, name=f"sagascope-decoder-{self.collector_id}"
            )
            self._decoder.start()  # now, not on the first record: it takes ~0.5 s
        try:
            if not self._wait_for_schema(stop_event):
                return
            backoff = 0.5
            while not stop_event.is_set():
                consumer = self._connect(stop_event)
                if consumer is None:
                    return
                self._consumer = consumer
                try:
                    self._loop(stop_event)
                except Exception:
                    # A bug or an unexpected client state must not end collection: start
                    # over from what the store holds, with a fresh consumer.
                    self.metrics.errors.labels("internal").inc()
                    log.exception("collector loop failed; restarting in %.1fs", backoff)
                    stop_event.wait(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
                finally:
                    self._shutdown()
        finally:
            self._writer.shutdown(wait=True)
            self._writer = None
            if self._decoder is not None:
                self._decoder.close()
                self._decoder = None
            self.metrics.close()

    def _wait_for_schema(self, stop_event: threading.Event) -> bool:
        backoff = 0.1
        while not stop_event.is_set():
            try:
                ensure_schema(self.store)
                return True
            except StoreError as exc:
                self.metrics.errors.labels("store").inc()
                log.warning("store not ready, retrying in %.1fs: %s", backoff, exc)
                stop_event.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
        return False

    def _connect(self, stop_event: threading.Event) -> Any:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "group_id": self.settings.group_id,
            "client_id": f"sagascope-collector-{self.collector_id}",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_interval_ms": self.settings.max_poll_interval_ms,
            "max_poll_records": self.settings.batch_rows,
            "session_timeout_ms": self.settings.session_timeout_ms,
            "heartbeat_interval_ms": max(100, min(3000, self.settings.session_timeout_ms // 3)),
            # Give up on an unreachable broker soon, so the retry loop can see stop requests.
            "bootstrap_timeout_ms": 5000,
        }
        config.update(self._consumer_config)
        self._fetch_wait_ms = int(config.get("fetch_max_wait_ms", 500))
        backoff = 0.2
        while not stop_event.is_set():
            try:
                consumer = KafkaConsumer(**config)
                log.info(
                    "collector %s connected group=%s include=%s",
                    self.collector_id, self.settings.group_id, self.pattern.pattern,
                )
                self._subscribed = frozenset()
                if self._decoder is not None:
                    # The decoding processes parse the records: kafka-python hands over the
                    # record batches of every topic but the spans topic.
                    hand_over_batches(consumer, self._decodes_elsewhere)
                self._start_watcher(config)
                return consumer
            except KafkaError as exc:
                self.metrics.errors.labels("broker").inc()
                log.warning("broker unavailable, retrying in %.1fs: %s", backoff, exc)
                stop_event.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
        return None

    def _start_watcher(self, config: Mapping[str, Any]) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        self._topics_seen = None
        self._watcher = _TopicWatcher(config, self.settings.topic_refresh_s, self.metrics)
        self._watcher.start()

    def _shutdown(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        try:
            with self._lock:
                self._drain_decoded()
            self._finish_inflight(wait=True)
            if self._batch.rows and not self._outage:
                self._flush()
                self._finish_inflight(wait=True)
        except Exception:  # closing must not raise; unstored rows are read again next time
            log.exception("final flush failed")
        consumer, self._consumer = self._consumer, None
        with self._lock:
            self._batch = Batch()
            self._inflight = None
            self._pending_commit.clear()
            self._states.clear()
            self._unpositioned.clear()
            self._outage = False
        try:
            consumer.close(autocommit=False)
        except Exception:
            log.exception("consumer close failed")

    # -- the loop ----------------------------------------------------------------------

    def _loop(self, stop_event: threading.Event) -> None:
        from kafka.errors import KafkaError

        settings = self.settings
        consumer = self._consumer
        while not stop_event.is_set():
            now = time.monotonic()
            if self._watcher is not None and self._watcher.topics is not self._topics_seen:
                self._subscribe(self._watcher.topics)
            if not self._subscribed:
                stop_event.wait(0.05)
                continue
            if self._unpositioned and now >= self._retry_at:
                self._position_pending()
            if self._inflight is not None and self._inflight.future.done():
                self._finish_inflight(wait=False)
            writing = self._inflight is not None
            # While a batch is being inserted the next may grow to twice the size, so that
            # reading and decoding go on meanwhile instead of waiting for the insert.
            room = settings.batch_rows * (2 if writing else 1) - self._batch.rows
            deadline = self._next_deadline()
            decoding = self._decoder is not None and self._decoder.pending_records > 0
            cap_s = _POLL_CAP_S if self._inflight is None and not decoding else _POLL_CAP_WRITING_S
            timeout_s = min(max(deadline - now, 0.0), cap_s)
            poll_started_ms = time.time_ns() // 1_000_000
            try:
                # With record batches handed over whole (``_records``), max_records counts
                # batches: a poll may overshoot ``room`` by up to what one fetch returned.
                records = consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max(room, 1))
            except KafkaError as exc:
                self.metrics.errors.labels("broker").inc()
                log.warning("poll failed: %s", exc)
                stop_event.wait(0.5)
                continue
            with self._lock:
                for tp, recs in records.items():
                    self._add(tp, recs)
                decoder = self._decoder
                if decoder is not None and decoder.pending_records:
                    # Apply what the decoding processes have answered; when they fall more
                    # than two batches behind, wait until they are one batch behind (they
                    # keep that much work queued, never running dry while the loop waits).
                    decoder.drain(
                        self._batch,
                        wait=decoder.pending_records > 2 * settings.batch_rows,
                        keep=settings.batch_rows,
                    )
            # A highwater mark may come from a fetch answered up to fetch_max_wait_ms before
            # this poll started: "caught up" holds only for records older than that.
            self._caught_up_ms = poll_started_ms - self._fetch_wait_ms
            now = time.monotonic()
            if now >= self._retry_at and self._flush_due(now):
                inserting = self._inflight is not None and not self._inflight.future.done()
                if not inserting or self._batch.rows >= 2 * settings.batch_rows:
                    self._flush()
            elif self._outage or room <= 0:
                self._pause_all()

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
            self._consumer.subscribe(topics=sorted(wanted), listener=_Listener(self))
            self._subscribed = wanted

    def _next_deadline(self) -> float:
        if self._outage:
            return self._retry_at
        base = self._batch.started if self._batch.rows else self._last_progress
        return base + self.settings.flush_interval_s

    def _flush_due(self, now: float) -> bool:
        if self._batch.rows >= self.settings.batch_rows:
            return True
        if self._batch.rows:
            return now - self._batch.started >= self.settings.flush_interval_s or self._outage
        return now - self._last_progress >= self.settings.flush_interval_s

    def _decodes_elsewhere(self, topic: str) -> bool:
        """Whether the decoding processes decode this topic's records (not the spans')."""
        return topic != self.settings.telemetry_topic

    def _add(self, tp: Any, records: list[Any]) -> None:
        state = self._states.get(tp)
        if state is None or tp in self._unpositioned:
            return  # fetched before positioning; read again after the seek
        self.metrics.consumed.labels(tp.topic).inc(record_count(records))
        spans = not self._decodes_elsewhere(tp.topic)
        if self._decoder is not None and not spans:
            self._decoder.submit(state, records, self._batch)
        else:
            add_records(self._batch, state, records, self._ctx, spans=spans)

    def _drain_decoded(self) -> None:
        """Add everything the decoding process still owes to the pending batch (before the
        batch or the partition states change other than by adding). Caller holds the lock."""
        if self._decoder is not None:
            self._decoder.drain(self._batch, wait=True)

    def _flush(self) -> None:
        """Store the pending batch, then progress, then commit; on failure pause and back off.

        While the store is healthy the insert runs in the writer thread and the loop decodes
        the next batch meanwhile (an insert is mostly native work in chDB or the server);
        progress and commit follow in :meth:`_finish_inflight`. One batch at most is in
        flight, and offsets are committed only once it is stored. When it fails, the batch
        decoded meanwhile is dropped and read again, and the failed one is retried as before
        (synchronously, with backoff, salvage after repeated rejections).
        """
        from kafka.structs import OffsetAndMetadata

        if self._inflight is not None:
            self._finish_inflight(wait=True)
            if self._outage:
                return  # it failed and is the pending batch again, retried after the backoff
        started = time.monotonic()
        with self._lock:
            batch = self._batch
            if batch.rows and self._writer is not None and not self._outage and not self._rejections:
                marks = {}
                for key in batch.ranges:
                    found = self._find(key)
                    if found is not None:
                        marks[key] = found[1].mark()
                self._batch = Batch()
                future = self._writer.submit(write_batch, self.store, batch)
                self._inflight = _InFlight(batch, marks, future, started)
                return
            try:
                if batch.rows and self._rejections >= _SALVAGE_AFTER:
                    states = {(st.topic, st.partition): st for st in self._states.values()}
                    replaced = salvage_batch(self.store, batch, states)
                    self.metrics.errors.labels("rejected_row").inc(replaced)
                elif batch.rows:
                    write_batch(self.store, batch)
            except StoreUnavailable as exc:
                self._store_failed(exc)
                return
            except StoreError as exc:
                if self._rejections >= _SALVAGE_AFTER:
                    # Salvage stored part of the batch: start over from what the store holds.
                    self._reposition()
                self._rejections += 1
                self._store_failed(exc)
                return
            self._rejections = 0
            for key in batch.ranges:
                st = self._state_for(key)
                if st is not None:
                    st.promote()
            self._batch = Batch()
            offsets = {
                tp: OffsetAndMetadata(st.stored_next, "", -1)
                for tp, st in self._states.items()
                if (st.topic, st.partition) in batch.ranges and st.stored_next is not None
            }
        progressed = self._write_progress()
        if self._outage and (batch.rows or progressed):
            self._recovered()
        if offsets:
            try:
                self._consumer.commit(offsets)
            except Exception as exc:  # the store is the truth: a failed commit loses nothing
                self.metrics.errors.labels("commit").inc()
                log.warning("offset commit failed (store already holds the rows): %s", exc)
        if batch.rows:
            self._count_stored(batch, started)

    def _count_stored(self, batch: Batch, started: float) -> None:
        elapsed = time.monotonic() - started
        self.metrics.batch_seconds.observe(elapsed)
        self.metrics.batch_rows.observe(batch.rows)
        self.metrics.count(self.metrics.stored, batch.consumed)
        self.metrics.count(self.metrics.parse_errors, batch.parse_errors)
        log.debug("stored batch rows=%d in %.3fs", batch.rows, elapsed)

    def _finish_inflight(self, *, wait: bool) -> None:
        """Settle the batch being written (from the loop): then progress, then commit."""
        from kafka.structs import OffsetAndMetadata

        inflight = self._inflight
        if inflight is None or (not wait and not inflight.future.done()):
            return
        with self._lock:
            settled = self._settle_inflight()
            if settled is None:
                return
            for tp, st in self._states.items():
                if (st.topic, st.partition) in settled.batch.ranges and st.stored_next is not None:
                    self._pending_commit[tp] = st.stored_next
            offsets = {
                tp: OffsetAndMetadata(offset, "", -1)
                for tp, offset in self._pending_commit.items()
                if tp in self._states
            }
            self._pending_commit.clear()
        self._write_progress()
        if offsets:
            # Not waited for: the store, not Kafka, says where partitions resume, so a commit
            # is an optimisation, and a round trip per batch was measured to stall the loop.
            try:
                self._consumer.commit_async(offsets, callback=self._committed)
            except Exception as exc:  # the store is the truth: a failed commit loses nothing
                self._committed(offsets, exc)
        self._count_stored(settled.batch, settled.started)

    def _committed(self, offsets: Any, result: Any) -> None:
        if isinstance(result, Exception):
            self.metrics.errors.labels("commit").inc()
            log.warning("offset commit failed (store already holds the rows): %s", result)

    def _settle_inflight(self) -> _InFlight | None:
        """Wait for the batch being written; promote its partitions, or make it pending again.

        Returns it when stored, None when there was none or it failed. Caller holds the lock.
        """
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return None
        try:
            inflight.future.result()
        except Exception as exc:
            self._restore_failed(inflight)
            if not isinstance(exc, StoreError):
                raise
            if not isinstance(exc, StoreUnavailable):
                self._rejections += 1
            self._store_failed(exc)
            return None
        for key, mark in inflight.marks.items():
            found = self._find(key)
            if found is not None:
                found[1].promote_to(mark)
        return inflight

    def _restore_failed(self, inflight: _InFlight) -> None:
        """The written batch failed: it is pending again, and what was decoded after it (its
        chain continues the failed batch's) is dropped, to be read again after it is stored."""
        self._drain_decoded()
        later = self._batch
        for key, (first, _last) in later.ranges.items():
            found = self._find(key)
            if found is None:
                continue
            tp, st = found
            st.rollback_to(inflight.marks.get(key))
            try:
                self._consumer.seek(tp, first)
            except Exception:  # no longer assigned: whoever owns it reads from the store
                log.debug("cannot seek %s back to %d", tp, first, exc_info=True)
        self._batch = inflight.batch

    def _reposition(self) -> None:
        """Drop the pending batch and re-read every partition's position from the store."""
        self._drain_decoded()
        self._batch = Batch()
        self._rejections = 0
        assigned = list(self._states)
        self._states.clear()
        self._unpositioned.update(assigned)
        if assigned:
            self._consumer.pause(*assigned)

    def _write_progress(self) -> bool:
        self._last_progress = time.monotonic()
        consumer = self._consumer
        highwaters: dict[tuple[str, int], int | None] = {}
        for tp, st in list(self._states.items()):
            try:
                if (
                    st.stored_next is None
                    and st.submitted_next is None  # nothing read from it is still decoding
                    and tp not in self._unpositioned
                ):
                    position = consumer.position(tp, timeout_ms=100)
                    if position is not None and st.buffered_next is None:
                        st.stored_next = st.buffered_next = position
                highwaters[(st.topic, st.partition)] = consumer.highwater(tp)
            except Exception:  # revoked meanwhile, or no position yet
                continue
            highwater = highwaters[(st.topic, st.partition)]
            if st.stored_next is not None:
                label = (st.topic, str(st.partition))
                self.metrics.stored_offset.labels(*label).set(st.stored_next)
                if highwater is not None:
                    self.metrics.lag.labels(*label).set(max(highwater - st.stored_next, 0))
        rows = progress_rows(
            self.settings.group_id, self.collector_id, list(self._states.values()),
            highwaters, self._caught_up_ms,
        )
        if not rows:
            return False
        try:
            self.store.insert("progress", rows)
        except StoreError as exc:
            self.metrics.errors.labels("progress").inc()
            log.warning("progress write failed: %s", exc)
            return False
        return True

    def _store_failed(self, exc: StoreError) -> None:
        self.metrics.errors.labels("store").inc()
        self.metrics.store_available.set(0)
        if not self._outage:
            log.warning("store unavailable, pausing partitions: %s", exc)
        else:
            log.debug("store still unavailable: %s", exc)
        self._outage = True
        self._retry_at = time.monotonic() + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, _MAX_BACKOFF_S)
        self._pause_all()

    def _recovered(self) -> None:
        log.warning("store available again, resuming partitions")
        self._outage = False
        self._backoff_s = 0.1
        self._retry_at = 0.0
        self.metrics.store_available.set(1)
        consumer = self._consumer
        resumable = [tp for tp in consumer.paused() if tp not in self._unpositioned]
        if resumable:
            consumer.resume(*resumable)

    def _pause_all(self) -> None:
        assigned = self._consumer.assignment()
        if assigned:
            self._consumer.pause(*assigned)

    def _state_for(self, key: tuple[str, int]) -> PartitionState | None:
        found = self._find(key)
        return None if found is None else found[1]

    def _find(self, key: tuple[str, int]) -> tuple[Any, PartitionState] | None:
        for tp, st in self._states.items():
            if (tp.topic, tp.partition) == key:
                return tp, st
        return None

    # -- assignment ----------------------------------------------------------------------

    def _assigned(self, partitions: Collection[Any]) -> None:
        with self._lock:
            self.metrics.rebalances.inc()
            new = [tp for tp in partitions if tp not in self._states]
            log.info("assigned %d partition(s) to %s", len(partitions), self.collector_id)
            if new:
                # Nothing is fetched until the store says where each partition resumes.
                self._unpositioned.update(new)
                self._consumer.pause(*new)
            self._position_pending()

    def _position_pending(self) -> None:
        """Seek newly assigned partitions past what the store holds; retried while it is down."""
        with self._lock:
            pending = sorted(self._unpositioned)
            if not pending:
                return
            try:
                found = stored_positions(self.store, [(tp.topic, tp.partition) for tp in pending])
            except StoreError as exc:
                self.metrics.errors.labels("position").inc()
                log.warning("cannot read stored positions, retrying: %s", exc)
                self._retry_at = time.monotonic() + self._backoff_s
                self._backoff_s = min(self._backoff_s * 2, _MAX_BACKOFF_S)
                return
            consumer = self._consumer
            for tp in pending:
                next_offset, last_chain = found.get((tp.topic, tp.partition), (None, ""))
                self._states[tp] = PartitionState(tp.topic, tp.partition, next_offset, last_chain)
                if next_offset is not None:
                    consumer.seek(tp, next_offset)
                log.info(
                    "positioned %s[%d] at %s", tp.topic, tp.partition,
                    next_offset if next_offset is not None else "committed/earliest",
                )
            self._unpositioned.clear()
            self.metrics.assigned_partitions.set(len(self._states))
            if not self._outage:
                consumer.resume(*pending)
            self.ready.set()

    def _revoked(self, partitions: Collection[Any]) -> None:
        with self._lock:
            keys = [(tp.topic, tp.partition) for tp in partitions]
            self._drain_decoded()
            self._settle_in_callback()
            if self._batch.rows and not self._outage:
                try:
                    write_batch(self.store, self._batch)
                    for st in self._states.values():
                        if (st.topic, st.partition) in self._batch.ranges:
                            st.promote()
                    self.metrics.count(self.metrics.stored, self._batch.consumed)
                    self.metrics.count(self.metrics.parse_errors, self._batch.parse_errors)
                    self._batch = Batch()
                except StoreError as exc:
                    self.metrics.errors.labels("store").inc()
                    log.warning("could not store before revocation; the new owner rereads: %s", exc)
            if self._batch.rows:
                self._batch.drop(keys)
                for tp in partitions:
                    revoked = self._states.get(tp)
                    if revoked is not None:
                        revoked.rollback()
                if not self._batch.rows:
                    self._batch = Batch()
            for tp in partitions:
                self._states.pop(tp, None)
                self._unpositioned.discard(tp)
                for gauge in (self.metrics.lag, self.metrics.stored_offset):
                    with contextlib.suppress(KeyError):
                        gauge.remove(tp.topic, str(tp.partition))
            self.metrics.assigned_partitions.set(len(self._states))
            log.info("revoked %d partition(s) from %s", len(partitions), self.collector_id)


    def _settle_in_callback(self) -> None:
        """Settle the batch being written before partitions move (commit is left to the loop:
        a rebalance callback must not make blocking consumer calls). Caller holds the lock."""
        try:
            settled = self._settle_inflight()
        except Exception:
            log.exception("batch write failed before a rebalance")
            return
        if settled is None:
            return
        for tp, st in self._states.items():
            if (st.topic, st.partition) in settled.batch.ranges and st.stored_next is not None:
                self._pending_commit[tp] = st.stored_next
        self._count_stored(settled.batch, settled.started)


class _Listener(ConsumerRebalanceListener):
    """kafka-python rebalance listener; runs on kafka-python's IO thread, so no blocking
    consumer calls (commit, position) here, only subscription-state ones (seek, pause)."""

    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    def on_partitions_revoked(self, revoked: Collection[Any]) -> None:
        self._collector._revoked(revoked)

    def on_partitions_lost(self, lost: Collection[Any]) -> None:
        # Someone else may own these already: drop, never store.
        collector = self._collector
        with collector._lock:
            collector._drain_decoded()
            collector._settle_in_callback()
            collector._batch.drop([(tp.topic, tp.partition) for tp in lost])
            for tp in lost:
                collector._states.pop(tp, None)
                collector._unpositioned.discard(tp)

    def on_partitions_assigned(self, assigned: Collection[Any]) -> None:
        self._collector._assigned(assigned)


#: KafkaConsumer settings that concern the group, left out of the topic watcher's client.
_GROUP_SETTINGS = frozenset({
    "group_id", "enable_auto_commit", "auto_offset_reset", "max_poll_interval_ms",
    "max_poll_records", "session_timeout_ms", "heartbeat_interval_ms",
})


class _TopicWatcher:
    """Lists the broker's topics every ``interval_s`` in its own thread, with its own client.

    ``topics`` is the latest listing (a new object each time it changes; None until the
    first); the collector thread compares it by identity and subscribes when it changed.
    """

    def __init__(self, config: Mapping[str, Any], interval_s: float, metrics: CollectorMetrics) -> None:
        self._config = {k: v for k, v in config.items() if k not in _GROUP_SETTINGS}
        self._config["client_id"] = f"{config.get('client_id', 'sagascope-collector')}-topics"
        self._interval_s = interval_s
        self._metrics = metrics
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.topics: frozenset[str] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sagascope-topics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        client = None
        try:
            while not self._stop.is_set():
                try:
                    if client is None:
                        client = KafkaConsumer(**self._config)
                    topics = frozenset(client.topics())
                    if topics != self.topics:
                        self.topics = topics
                except KafkaError as exc:
                    self._metrics.errors.labels("broker").inc()
                    log.warning("cannot list topics: %s", exc)
                self._stop.wait(self._interval_s if self.topics is not None else 0.5)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
