"""Store outages, rows the store refuses, and several collectors in one group."""

from __future__ import annotations

import os
import threading
import time

import pytest
from chdb_http import ChdbHttpServer
from collector_helpers import ProducedLog, producer, running, send_all
from waiting import stays_true, wait_until

from sagascope.collector import Collector
from sagascope.store import ChdbStore, ClickHouseStore, StoreError, ensure_schema, verify


def offsets(store, topic: str) -> list[tuple[str, int, int]]:
    rows = store.query(
        "SELECT topic, partition, offset FROM messages WHERE topic = {t:String}", {"t": topic}
    ).rows
    return [(t, int(p), int(o)) for t, p, o in rows]


def records(topic: str, start: int, stop: int):
    return [
        (topic, None, b'{"n": %d}' % i, [("ce_sagaid", b"s%d" % (i % 50))], "")
        for i in range(start, stop)
    ]


@pytest.mark.slow
def test_a_30s_store_outage_loses_and_duplicates_nothing(
    chdb_path, bootstrap_servers, make_topic, collector_settings
):
    """The store is a real ClickHouse HTTP endpoint (chDB behind it) that goes away for 30 s:
    clickhouse-connect gets connection refused, the collector pauses, keeps its group
    membership, and catches up when the endpoint returns."""
    topic = make_topic("outage", partitions=2)
    database = f"outage_{os.getpid()}"
    server = ChdbHttpServer(chdb_path).start()
    port = server.port
    store = ClickHouseStore(f"{server.url}/{database}?connect_timeout=2")
    # Not the shared ``store`` fixture: the database the loopback server serves, read here
    # directly while that server is down.
    local = ChdbStore(chdb_path, database)
    # The collector creates its schema as it starts, in its own thread: created here first,
    # the reads below cannot run before the table exists (seen under load).
    ensure_schema(local)
    log = ProducedLog()
    collector = Collector(
        store, bootstrap_servers, collector_settings(include=topic, flush_interval_s=0.2)
    )
    collector.start()
    try:
        with producer(bootstrap_servers) as p:
            send_all(p, records(topic, 0, 1000), log)
            wait_until(
                lambda: len(offsets(local, topic)) == 1000, 60, "1000 rows before the outage"
            )
            rebalances = collector.metrics.value("rebalances")
            server.stop()
            outage_started = time.monotonic()
            for start in range(1000, 2500, 300):  # traffic keeps coming during the outage
                send_all(p, records(topic, start, start + 300), log)
                time.sleep(2)
            wait_until(
                lambda: collector.metrics.value("store_available") == 0, 30, "the outage noticed"
            )
            stays_true(
                lambda: len(offsets(local, topic)) == 1000,
                30 - (time.monotonic() - outage_started),
                "nothing stored during the outage",
                interval_s=1,
            )
            assert collector.metrics.value("errors", kind="store") >= 3  # retried with backoff
            server = ChdbHttpServer(chdb_path, port=port).start()
            wait_until(
                lambda: len(offsets(local, topic)) >= 2500, 90, "catching up after the outage"
            )
            wait_until(
                lambda: collector.metrics.value("store_available") == 1, 30, "recovery noticed"
            )
    finally:
        collector.stop()
        server.stop()
    rows = offsets(local, topic)
    assert len(rows) == len(set(rows)) == 2500
    assert set(rows) == log.acked
    # Paused and kept polling: the group never rebalanced during the outage.
    assert collector.metrics.value("rebalances") == rebalances
    assert verify(local, topic).ok
    local.command(f"DROP DATABASE {database}")


class RefusingStore:
    """The real chDB store, refusing inserts of rows whose payload contains a marker, as a
    server refuses a row it cannot parse."""

    def __init__(self, inner, marker: str) -> None:
        self._inner = inner
        self._marker = marker
        self.refused = 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def insert(self, table, rows, *, dedup_token=None):
        if table == "messages" and any(self._marker in r.get("payload", "") for r in rows):
            self.refused += 1
            raise StoreError("Code: 27. DB::Exception: Cannot parse input (test)")
        return self._inner.insert(table, rows, dedup_token=dedup_token)

    def insert_encoded(self, table, columns, data, *, dedup_token=None):
        if table == "messages" and self._marker.encode() in data:
            self.refused += 1
            raise StoreError("Code: 27. DB::Exception: Cannot parse input (test)")
        return self._inner.insert_encoded(table, columns, data, dedup_token=dedup_token)


def test_a_row_the_store_refuses_does_not_block_its_partition(
    store, bootstrap_servers, make_topic, collector_settings
):
    topic = make_topic("refuse", partitions=1)
    log = ProducedLog()
    with producer(bootstrap_servers) as p:
        send_all(p, records(topic, 0, 30), log)
        send_all(p, [(topic, None, b'{"POISON": 1}', [], "")], log)
        send_all(p, records(topic, 31, 60), log)
    refusing = RefusingStore(store, "POISON")
    collector = Collector(refusing, bootstrap_servers, collector_settings(include=topic))
    with running(collector):
        wait_until(lambda: len(offsets(store, topic)) == 60, 60, "all 60 rows")
    assert refusing.refused >= 3
    (error,) = store.query(
        "SELECT parse_error FROM messages WHERE topic = {t:String} AND offset = 30", {"t": topic}
    ).column("parse_error")
    assert error.startswith("the store rejected this row: ")
    assert set(offsets(store, topic)) == log.acked
    assert verify(store, topic).ok


@pytest.mark.slow
def test_two_collectors_in_one_group_split_the_partitions_exactly(
    store, bootstrap_servers, make_topic, collector_settings
):
    topic = make_topic("split", partitions=4)
    settings = collector_settings(include=topic)
    log = ProducedLog()
    first = Collector(store, bootstrap_servers, settings, collector_id="first")
    second = Collector(store, bootstrap_servers, settings, collector_id="second")
    stop_producing = threading.Event()
    split = threading.Event()

    def produce() -> None:
        with producer(bootstrap_servers) as p:
            n = 0
            while not stop_producing.is_set() and n < 4000:
                if n == 2000:
                    # The second half only once the partitions are split, so that both
                    # collectors have rows to store however long the group takes to rebalance.
                    split.wait(90)
                send_all(p, records(topic, n, n + 200), log)
                n += 200
                time.sleep(0.2)

    producing = threading.Thread(target=produce)
    producing.start()
    first.start()
    try:
        wait_until(lambda: first.metrics.value("stored") > 0, 60, "the first collector storing")
        second.start()  # joins mid-stream: a rebalance with rows in flight
        wait_until(
            lambda: (
                first.metrics.value("assigned_partitions") == 2
                and second.metrics.value("assigned_partitions") == 2
            ),
            60,
            "the partitions split 2/2",
        )
        split.set()
        producing.join(120)
        wait_until(lambda: len(offsets(store, topic)) >= len(log.acked), 90, "every record stored")
    finally:
        stop_producing.set()
        split.set()
        producing.join(30)
        first.stop()
        second.stop()
    rows = offsets(store, topic)
    assert len(rows) == len(set(rows)) == len(log.acked) == 4000
    assert set(rows) == log.acked
    assert first.metrics.value("stored") > 0 and second.metrics.value("stored") > 0
    assert first.metrics.value("stored") + second.metrics.value("stored") == 4000
    assert verify(store, topic).ok


@pytest.mark.slow
def test_a_collector_started_before_its_broker_connects_once_it_is_up(
    store, make_topic, collector_settings
):
    from sagascope.embedded import EmbeddedBroker, create_topics, free_port

    port = free_port()
    topic = "late.broker"
    collector = Collector(store, f"127.0.0.1:{port}", collector_settings(include=topic))
    with running(collector):
        wait_until(
            lambda: collector.metrics.value("errors", kind="broker") > 0, 30, "a failed connect"
        )
        # Not the shared broker: this one must start after the collector, on a port it knows.
        with EmbeddedBroker(port=port) as broker:
            create_topics(broker.bootstrap_servers, {topic: 1})
            log = ProducedLog()
            with producer(broker.bootstrap_servers) as p:
                send_all(p, records(topic, 0, 20), log)
            wait_until(lambda: len(offsets(store, topic)) == 20, 60, "rows from the late broker")
            collector.stop()
    assert set(offsets(store, topic)) == log.acked
