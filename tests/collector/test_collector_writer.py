"""The writer thread: a batch is inserted while the next one is decoded, and a failed insert
sends the collector back to that batch with the chain and offsets intact."""

from __future__ import annotations

import threading
import time

import pytest
from collector_helpers import ProducedLog, producer, running, send_all
from waiting import poll_until, wait_until

from sagascope.collector import Collector
from sagascope.store import StoreError, StoreUnavailable, verify


class Intercepted:
    """The real chDB store, with ``_before(table)`` run ahead of every insert."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def insert(self, table, rows, *, dedup_token=None):
        self._before(table)
        return self._inner.insert(table, rows, dedup_token=dedup_token)

    def insert_encoded(self, table, columns, data, *, dedup_token=None):
        self._before(table)
        return self._inner.insert_encoded(table, columns, data, dedup_token=dedup_token)

    def _before(self, table):
        raise NotImplementedError


class FailFirstInsert(Intercepted):
    """Its first ``messages`` insert waits until the collector has read past that batch (so
    a later batch is being decoded meanwhile), then fails."""

    def __init__(self, inner, error: StoreError, read_past: int) -> None:
        super().__init__(inner)
        self._error = error
        self._read_past = read_past
        self.collector: Collector | None = None
        self.failed = threading.Event()
        self.overlapped = False

    def _before(self, table):
        if table == "messages" and not self.failed.is_set():
            # In the collector's thread: a timeout is not failed here, the test asserts on it.
            self.overlapped = bool(poll_until(
                lambda: self.collector.metrics.value("consumed") >= self._read_past, 20, 0.01
            ))
            self.failed.set()
            raise self._error


def offsets(store, topic: str) -> list[int]:
    return [
        int(o)
        for (o,) in store.query(
            "SELECT offset FROM messages WHERE topic = {t:String}", {"t": topic}
        ).rows
    ]


@pytest.mark.parametrize(
    "error",
    [StoreUnavailable("connection refused (test)"), StoreError("Code: 27. Cannot parse (test)")],
    ids=["unavailable", "rejected"],
)
def test_a_failed_insert_while_the_next_batch_is_decoded_loses_and_duplicates_nothing(
    store, bootstrap_servers, make_topic, collector_settings, error
):
    topic = make_topic("writer", partitions=1)
    log = ProducedLog()
    with producer(bootstrap_servers) as p:
        send_all(
            p,
            [
                (topic, None, b'{"n": %d}' % i, [("ce_sagaid", b"s%d" % (i % 7))], "")
                for i in range(300)
            ],
            log,
        )
    failing = FailFirstInsert(store, error, read_past=150)
    collector = Collector(failing, bootstrap_servers, collector_settings(include=topic, batch_rows=100))
    failing.collector = collector
    with running(collector):
        poll_until(lambda: len(offsets(store, topic)) >= 300, 60)
    assert failing.failed.is_set()
    assert failing.overlapped, "the next batch was not read while the first was being inserted"
    stored = offsets(store, topic)
    assert sorted(stored) == list(range(300))  # each offset once
    assert {(topic, 0, o) for o in stored} == log.acked
    assert collector.metrics.value("stored") == 300
    assert verify(store, topic).ok  # the chain runs on across the failed batch


class HeldInsert(Intercepted):
    """Its first ``messages`` insert waits until released."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.held = threading.Event()
        self.release = threading.Event()

    def _before(self, table):
        if table == "messages" and not self.held.is_set():
            self.held.set()
            self.release.wait(30)


def test_reading_goes_on_while_a_batch_is_inserted_up_to_a_second_batch(
    store, bootstrap_servers, make_topic, collector_settings
):
    topic = make_topic("writer", partitions=1)
    log = ProducedLog()
    with producer(bootstrap_servers) as p:
        for i in range(0, 400, 20):  # small record batches, so that polls return few
            send_all(
                p, [(topic, None, b'{"n": %d}' % n, [], "") for n in range(i, i + 20)], log
            )
    held = HeldInsert(store)
    # Decoding in-process: what is consumed is then in the batch (none waits in a child).
    settings = collector_settings(include=topic, batch_rows=100, decode_workers=0)
    collector = Collector(held, bootstrap_servers, settings)
    collector.start()
    try:
        assert held.held.wait(30), "no insert started"
        # The first batch (100 rows) is held in its insert: the loop reads on into the next
        # batch past its 100 rows (it used to wait for the insert once that batch was full).
        wait_until(lambda: collector.metrics.value("consumed") >= 260, 20, "260 records read", 0.05)
        time.sleep(0.5)  # ... and no further than a second batch: then it waits
        assert collector.metrics.value("consumed") <= 300
        assert collector.metrics.value("stored") == 0
        held.release.set()
        poll_until(lambda: len(offsets(store, topic)) >= 400, 60)
    finally:
        held.release.set()
        collector.stop()
    stored = offsets(store, topic)
    assert sorted(stored) == list(range(400))
    assert {(topic, 0, o) for o in stored} == log.acked
    assert verify(store, topic).ok
