"""Which partitions this collector holds and where each stands: the partition table.

One key type, :class:`Partition`, names a partition everywhere in the collector (the table, a
batch's offset ranges, the decoding pool, the Kafka client adapters); the adapters translate
it to and from their client's own type at the boundary. The table is changed only through its
methods: the rebalance listener and the loop call them, nothing edits its fields.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from sagascope.collector.exceptions import BrokerError
from sagascope.collector.metrics import CollectorMetrics

log = logging.getLogger(__name__)


class Partition(NamedTuple):
    """A topic partition (a tuple: cheap to hash, equal to kafka-python's ``TopicPartition``)."""

    topic: str
    partition: int


#: (next offset, chain hash, Kafka time) of one partition at some point of buffering.
Mark = tuple[int | None, str, int]


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
    #: First offset the store collected of this partition (records before it were never
    #: stored); None until known: from the store on resume, else the first position or record.
    start_offset: int | None = None

    def __post_init__(self) -> None:
        self.buffered_next = self.stored_next
        self.buffered_chain = self.stored_chain

    @property
    def key(self) -> Partition:
        return Partition(self.topic, self.partition)

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


class PartitionTable:
    """The assigned partitions: positioned ones with their state, and those waiting for the
    store to say where they resume (paused meanwhile). Also the offsets stored but not yet
    committed (a write settled in a rebalance callback is committed later, from the loop)."""

    def __init__(self) -> None:
        self.states: dict[Partition, PartitionState] = {}
        self.unpositioned: set[Partition] = set()
        self._pending_commit: dict[Partition, int] = {}

    def __len__(self) -> int:
        return len(self.states)

    def get(self, key: Partition) -> PartitionState | None:
        return self.states.get(key)

    def positioned(self, key: Partition) -> PartitionState | None:
        """The state of ``key`` when records fetched for it may be used."""
        return None if key in self.unpositioned else self.states.get(key)

    def assign(self, partitions: Iterable[Partition]) -> list[Partition]:
        """New partitions wait for a position; returns them (to pause until positioned)."""
        new = [p for p in partitions if p not in self.states]
        self.unpositioned.update(new)
        return new

    def position(
        self, found: Mapping[Partition, tuple[int, str]], starts: Mapping[Partition, int]
    ) -> list[tuple[Partition, int | None]]:
        """Position every waiting partition from the store's answer (next offset and chain,
        and the first offset collected); (partition, next offset or None: nothing stored)."""
        out = []
        for key in sorted(self.unpositioned):
            next_offset, last_chain = found.get(key, (None, ""))
            self.states[key] = PartitionState(
                key.topic, key.partition, next_offset, last_chain,
                start_offset=starts.get(key) if next_offset is not None else None,
            )
            out.append((key, next_offset))
        self.unpositioned.clear()
        return out

    def revoke(self, partitions: Iterable[Partition]) -> None:
        """Forget partitions that moved to another member (or were lost)."""
        for key in partitions:
            self.states.pop(key, None)
            self.unpositioned.discard(key)
            self._pending_commit.pop(key, None)

    def unposition_all(self) -> list[Partition]:
        """Re-read every position from the store (after a partly stored salvage)."""
        assigned = list(self.states)
        self.states.clear()
        self.unpositioned.update(assigned)
        return assigned

    def promote(self, keys: Iterable[Partition]) -> None:
        """The pending batch holding these partitions' rows was stored."""
        for key in keys:
            st = self.states.get(key)
            if st is not None:
                st.promote()

    def promote_to(self, marks: Mapping[Partition, Mark]) -> None:
        """A written batch was stored: each partition up to its mark."""
        for key, mark in marks.items():
            st = self.states.get(key)
            if st is not None:
                st.promote_to(mark)

    def rollback(self, keys: Iterable[Partition]) -> None:
        for key in keys:
            st = self.states.get(key)
            if st is not None:
                st.rollback()

    def stored_offsets(self, keys: Collection[Partition]) -> dict[Partition, int]:
        """Next stored offset of each of ``keys`` still held."""
        return {
            key: st.stored_next
            for key, st in self.states.items()
            if key in keys and st.stored_next is not None
        }

    def commit_later(self, keys: Collection[Partition]) -> None:
        self._pending_commit.update(self.stored_offsets(keys))

    def take_commits(self, keys: Collection[Partition] = ()) -> dict[Partition, int]:
        """Offsets to commit now: those left for later plus ``keys``' stored ones."""
        self.commit_later(keys)
        offsets = {k: o for k, o in self._pending_commit.items() if k in self.states}
        self._pending_commit.clear()
        return offsets

    def clear(self) -> None:
        self.states.clear()
        self.unpositioned.clear()
        self._pending_commit.clear()


class AssignmentHandler(Protocol):
    """What the rebalance listener asks of the collector (its table and its writes)."""

    def assigned(self, partitions: list[Partition]) -> None: ...

    def revoked(self, partitions: list[Partition]) -> None: ...

    def lost(self, partitions: list[Partition]) -> None: ...


class TopicWatcher:
    """Lists the broker's topics every ``interval_s`` in its own thread, with its own client
    (a metadata request on the loop's connection waits behind fetches: ~0.5 s stalls).

    ``topics`` is the latest listing (a new object each time it changes; None until the
    first); the collector thread compares it by identity and subscribes when it changed.

    Args:
        list_topics: opens a client (on the first call and after a failure) and returns a
            function listing the topics; both raise :class:`BrokerError` on broker trouble.
    """

    def __init__(
        self,
        open_lister: Callable[[], tuple[Callable[[], Collection[str]], Callable[[], None]]],
        interval_s: float,
        metrics: CollectorMetrics,
    ) -> None:
        self._open_lister = open_lister
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
        lister: Callable[[], Collection[str]] | None = None
        close: Callable[[], None] | None = None
        try:
            while not self._stop.is_set():
                try:
                    if lister is None:
                        lister, close = self._open_lister()
                    topics = frozenset(lister())
                    if topics != self.topics:
                        self.topics = topics
                except BrokerError as exc:
                    self._metrics.errors.labels("broker").inc()
                    log.warning("cannot list topics: %s", exc)
                self._stop.wait(self._interval_s if self.topics is not None else 0.5)
        finally:
            if close is not None:
                with contextlib.suppress(Exception):
                    close()


def partitions_of(items: Iterable[Any]) -> list[Partition]:
    """Client partition objects (anything with ``topic`` and ``partition``) as Partitions."""
    return [Partition(p.topic, p.partition) for p in items]
