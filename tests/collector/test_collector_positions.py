"""Where partitions start: from what the store holds, never from the group's committed offsets."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator

import pytest
from collector_helpers import ProducedLog, producer, running, send_all
from kafka import KafkaConsumer, TopicPartition
from waiting import wait_until

from sagascope.collector import Collector
from sagascope.store import ChdbStore, ensure_schema, verify

_fresh = itertools.count()


@pytest.fixture
def fresh_store(chdb_path: str) -> Iterator[ChdbStore]:
    """A second store with nothing in it (a database of its own in the process's chDB)."""
    s = ChdbStore(chdb_path, f"fresh_{os.getpid()}_{next(_fresh)}")
    ensure_schema(s)
    yield s
    s.command(f"DROP DATABASE IF EXISTS {s.database}")


def stored(store, topic: str) -> set[tuple[str, int, int]]:
    rows = store.query(
        "SELECT topic, partition, offset FROM messages WHERE topic = {t:String}", {"t": topic}
    ).rows
    return {(t, int(p), int(o)) for t, p, o in rows}


def committed(bootstrap_servers: str, group_id: str, topic: str, partitions: int) -> int:
    """Sum of the group's committed offsets on the topic's partitions."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group_id, enable_auto_commit=False
    )
    try:
        offsets = [consumer.committed(TopicPartition(topic, p)) for p in range(partitions)]
        return sum(o or 0 for o in offsets)
    finally:
        consumer.close(autocommit=False)


def test_a_fresh_store_gets_everything_kafka_holds_despite_committed_offsets(
    store, fresh_store, bootstrap_servers, make_topic, collector_settings
):
    topic = make_topic("refill", partitions=2)
    log = ProducedLog()
    with producer(bootstrap_servers) as p:
        send_all(p, [(topic, None, b'{"n": %d}' % i, [], "") for i in range(40)], log)
    settings = collector_settings(include=topic)
    first = Collector(store, bootstrap_servers, settings)
    first.start()
    try:
        wait_until(lambda: len(stored(store, topic)) == 40, 60, "40 rows in the first store")
        wait_until(
            lambda: committed(bootstrap_servers, settings.group_id, topic, 2) == 40, 30,
            "the group's offsets committed at the end of both partitions",
        )
    finally:
        first.stop()
    second = Collector(fresh_store, bootstrap_servers, settings)  # same group, empty store
    second.start()
    try:
        wait_until(lambda: len(stored(fresh_store, topic)) == 40, 60, "40 rows in the fresh store")
    finally:
        second.stop()
    assert stored(fresh_store, topic) == log.acked
    report = verify(fresh_store, topic)
    assert report.ok and report.rows == 40


def test_start_from_latest_skips_what_kafka_held_before(
    store, bootstrap_servers, make_topic, collector_settings
):
    topic = make_topic("latest")
    with producer(bootstrap_servers) as p:
        # One record batch each: Tansu answers a "latest" ListOffsets with the last batch's
        # base offset + 1, which is the log end only for a batch of one record.
        for _ in range(10):
            send_all(p, [(topic, None, b'{"old": true}', [], "")], ProducedLog())
    collector = Collector(store, bootstrap_servers, collector_settings(include=topic, start_from="latest"))
    with running(collector):
        wait_until(
            lambda: store.query(
                "SELECT count() FROM progress WHERE topic = {t:String} AND stored_offset = 10",
                {"t": topic},
            ).scalar() > 0,
            60, "the partition positioned at its end",
        )
        log = ProducedLog()
        with producer(bootstrap_servers) as p:
            send_all(p, [(topic, None, b'{"new": true}', [], "")] * 5, log)
        wait_until(lambda: len(stored(store, topic)) == 5, 60, "the 5 new rows")
    assert stored(store, topic) == log.acked == {(topic, 0, o) for o in range(10, 15)}
    (partition,) = verify(store, topic).partitions
    assert partition.ok and partition.never_stored == (0, 9)


def test_the_collector_says_where_it_stores_and_where_each_partition_starts(
    store, bootstrap_servers, make_topic, collector_settings, caplog
):
    topic = make_topic("said", partitions=2)
    with producer(bootstrap_servers) as p:
        send_all(p, [(topic, None, b'{"n": 1}', [], "")] * 4, ProducedLog())
    collector = Collector(store, bootstrap_servers, collector_settings(include=topic))
    caplog.clear()  # the test's producer's warnings
    with caplog.at_level(logging.INFO), running(collector):
        wait_until(lambda: len(stored(store, topic)) == 4, 60, "4 rows")
    lines = [r.getMessage() for r in caplog.records]
    assert f"store: chdb at {store.path}, database {store.database}" in lines
    assert any(line.startswith(f"broker: {bootstrap_servers}, client ") for line in lines)
    assert (
        f"topic {topic}: partition@start 0@earliest (nothing stored), 1@earliest (nothing stored)"
        in lines
    )
    assert not [r for r in caplog.records if r.name.startswith("kafka") and r.levelno >= logging.WARNING]


def test_a_row_deleted_by_hand_from_a_collected_partition_is_reported_as_deleted(
    store, bootstrap_servers, make_topic, collector_settings
):
    topic = make_topic("handdel")
    with producer(bootstrap_servers) as p:
        send_all(p, [(topic, None, b'{"n": 1}', [], "")] * 10, ProducedLog())
    collector = Collector(store, bootstrap_servers, collector_settings(include=topic))
    with running(collector):
        wait_until(lambda: len(stored(store, topic)) == 10, 60, "10 rows")
    store.command(
        "ALTER TABLE messages DELETE WHERE topic = {t:String} AND offset = 5 "
        "SETTINGS mutations_sync = 2", {"t": topic},
    )
    (partition,) = verify(store, topic).partitions
    assert partition.deleted == [(5, 5)] and not partition.lost and partition.never_stored is None
