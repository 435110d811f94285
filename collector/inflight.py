"""The batch being written, and what happens when the store does not take it.

While the store is healthy one batch at a time is inserted by a writer thread and the loop
decodes the next meanwhile (an insert is mostly native work in chDB or the server). When the
write settles, its partitions are promoted to the marks taken at submission; when it fails,
the failed batch is pending again and what was decoded after it (its chain continues the
failed batch's) is dropped and read again. A batch the store keeps rejecting (errors other
than :class:`StoreUnavailable`) is salvaged row by row after ``SALVAGE_AFTER`` attempts, so one
row the store refuses cannot block a partition forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from sagascope.collector.assignment import Mark, Partition, PartitionTable
from sagascope.collector.backoff import Backoff
from sagascope.collector.batch import Batch
from sagascope.collector.writer import write_batch
from sagascope.store import StoreError, StoreUnavailable
from sagascope.store.base import Store

log = logging.getLogger(__name__)

#: Consecutive rejections of one batch (errors other than StoreUnavailable) before it is
#: stored row by row.
SALVAGE_AFTER = 3


@dataclass
class InFlight:
    """A batch the writer thread is inserting, and where each of its partitions ends."""

    batch: Batch
    marks: dict[Partition, Mark]
    future: Future[None]
    started: float


@dataclass
class StoreHealth:
    """Whether the store takes writes, when to try again, and how often it rejected a batch."""

    outage: bool = False
    rejections: int = 0
    backoff: Backoff = field(default_factory=Backoff)

    @property
    def salvage_due(self) -> bool:
        return self.rejections >= SALVAGE_AFTER

    def failed(self, exc: StoreError) -> bool:
        """The store failed a write; True when this starts an outage."""
        if not isinstance(exc, StoreUnavailable):
            self.rejections += 1
        started = not self.outage
        self.outage = True
        self.backoff.failed()
        return started

    def recovered(self) -> None:
        self.outage = False
        self.backoff.succeeded()


class InFlightWrite:
    """The writer thread and the one batch it may be inserting."""

    def __init__(self, store: Store, name: str) -> None:
        self._store = store
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self.current: InFlight | None = None

    @property
    def inserting(self) -> bool:
        return self.current is not None and not self.current.future.done()

    @property
    def settled(self) -> bool:
        """A write was submitted and has finished (stored or failed)."""
        return self.current is not None and self.current.future.done()

    def submit(self, batch: Batch, table: PartitionTable, started: float) -> None:
        """Start inserting ``batch``; its partitions' marks are taken now."""
        marks = {}
        for key in batch.ranges:
            st = table.get(key)
            if st is not None:
                marks[key] = st.mark()
        future = self._executor.submit(write_batch, self._store, batch)
        self.current = InFlight(batch, marks, future, started)

    def settle(self, table: PartitionTable) -> tuple[InFlight | None, Exception | None]:
        """Wait for the batch being written: (it, None) when stored (its partitions promoted),
        (it, the error) when it failed, (None, None) when there was none."""
        inflight, self.current = self.current, None
        if inflight is None:
            return None, None
        try:
            inflight.future.result()
        except Exception as exc:
            return inflight, exc
        table.promote_to(inflight.marks)
        return inflight, None

    def forget(self) -> None:
        self.current = None

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def restore(
    failed: InFlight,
    later: Batch,
    table: PartitionTable,
    seek: Callable[[Partition, int], None],
) -> Batch:
    """The written batch failed: it is pending again (returned), and ``later`` (decoded after
    it) is dropped: its partitions roll back to the failed batch's marks and are read again."""
    for key, (first, _last) in later.ranges.items():
        st = table.get(key)
        if st is None:
            continue
        st.rollback_to(failed.marks.get(key))
        try:
            seek(key, first)
        except Exception:  # no longer assigned: whoever owns it reads from the store
            log.debug("cannot seek %s back to %d", key, first, exc_info=True)
    return failed.batch
