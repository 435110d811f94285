"""The writer thread: a batch is inserted while the next one is decoded, and a failed insert
sends the collector back to that batch with the chain and offsets intact."""

from __future__ import annotations

import threading
import time

import pytest
from collector_helpers import ProducedLog, producer, send_all
from sagascope.collector import Collector, StoreError, StoreUnavailable, verify


class FailFirstInsert:
    """The real chDB store; its first ``messages`` insert waits until the collector has read
    past that batch (so a later batch is being decoded meanwhile), then fails."""

    def __init__(self, inner, error: StoreError, read_past: int) -> None:
        self._inner = inner
        self._error = error
        self._read_past = read_past
        self.collector: Collector | None = None
        self.failed = threading.Event()
        self.overlapped = False

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def insert(self, table, rows, *, dedup_token=None):
        self._maybe_fail(table)
        return self._inner.insert(table, rows, dedup_token=dedup_token)

    def insert_encoded(self, table, columns, data, *, dedup_token=None):
        self._maybe_fail(table)
        return self._inner.insert_encoded(table, columns, data, dedup_token=dedup_token)

    def _maybe_fail(self, table):
        if table == "messages" and not self.failed.is_set():
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if self.collector.metrics.value("consumed") >= self._read_past:
                    self.overlapped = True
                    break
                time.sleep(0.01)
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
    collector.start()
    try:
        deadline = time.monotonic() + 60
        while len(offsets(store, topic)) < 300 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        collector.stop()
    assert failing.failed.is_set()
    assert failing.overlapped, "the next batch was not read while the first was being inserted"
    stored = offsets(store, topic)
    assert sorted(stored) == list(range(300))  # each offset once
    assert {(topic, 0, o) for o in stored} == log.acked
    assert collector.metrics.value("stored") == 300
    assert verify(store, topic).ok  # the chain runs on across the failed batch
