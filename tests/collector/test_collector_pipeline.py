"""The collector against the real embedded broker and a real chDB store."""

from __future__ import annotations

import json
import urllib.request

from collector_helpers import ProducedLog, producer, running, send_all
from waiting import wait_until

from sagascope.collector import Collector
from sagascope.embedded import create_topics, free_port
from sagascope.store import verify

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def stored_offsets(store, table: str, prefix: str) -> list[tuple[str, int, int]]:
    rows = store.query(
        f"SELECT topic, partition, offset FROM {table} WHERE startsWith(topic, {{p:String}})",
        {"p": prefix},
    ).rows
    return [(t, int(p), int(o)) for t, p, o in rows]


def prefix_of(topic: str) -> str:
    return topic.rsplit(".", 1)[0] + "."


def test_every_matching_topic_is_stored_once_new_topics_included(
    store, bootstrap_servers, make_topic, collector_settings
):
    a = make_topic("pipe", partitions=2)
    prefix = prefix_of(a)
    skipped = prefix + "skip"
    create_topics(bootstrap_servers, {skipped: 1})
    log = ProducedLog()
    headers = [("ce_sagaid", b"order-1"), ("ce_type", b"OrderPlaced"), ("ce_id", b"m1")]
    with producer(bootstrap_servers) as p:
        send_all(
            p,
            [(a, f"k{i}".encode(), json.dumps({"i": i}).encode(), headers, "") for i in range(60)],
            log,
        )
        p.send(skipped, b"never").get(timeout=30)
    settings = collector_settings(include=f"{prefix}.*", exclude=".*skip", metrics_port=free_port())
    collector = Collector(store, bootstrap_servers, settings)
    with running(collector):
        wait_until(
            lambda: len(stored_offsets(store, "messages", prefix)) >= 60, 60, "60 stored rows"
        )
        late = prefix + "late"
        create_topics(bootstrap_servers, {late: 1})
        with producer(bootstrap_servers) as p:
            send_all(p, [(late, None, b'{"late": true}', [], "")] * 5, log)
        wait_until(
            lambda: len(stored_offsets(store, "messages", prefix)) >= 65, 60, "the new topic's rows"
        )
        metrics = (
            urllib.request.urlopen(f"http://127.0.0.1:{collector.metrics_port}/metrics")
            .read()
            .decode()
        )
        wait_until(
            lambda: (
                store.query(
                    "SELECT count() FROM progress FINAL WHERE startsWith(topic, {p:String})",
                    {"p": prefix},
                ).scalar()
                >= 3
            ),
            30,
            "progress rows for the 3 partitions",
        )
    rows = stored_offsets(store, "messages", prefix)
    assert sorted(rows) == sorted(log.acked)
    assert collector.metrics.value("stored") == 65
    assert 'sagascope_collector_stored_total{topic="' + a + '"} 60.0' in metrics
    assert "sagascope_collector_batch_seconds_count" in metrics
    assert verify(store, prefix.replace(".", r"\.") + ".*").ok


def test_bad_records_are_stored_with_their_parse_error_and_spans_go_to_spans(
    store, bootstrap_servers, make_topic, collector_settings
):
    topic = make_topic("bad", partitions=1)
    telemetry = make_topic("spans", partitions=1)
    span = {
        "trace_id": "a" * 32,
        "span_id": "b" * 16,
        "name": "pay",
        "kind": "CONSUMER",
        "service": "payment",
        "start_time_unix_nano": 1,
        "end_time_unix_nano": 2,
        "status_code": "OK",
        "attributes": {"k": "v"},
        "links": [],
        "events": [],
    }
    big = json.dumps({"blob": "x" * (5 * 1024 * 1024)}).encode()
    log = ProducedLog()
    with producer(bootstrap_servers) as p:
        send_all(
            p,
            [
                (topic, None, b'{"ok": 1}', [("ce_sagaid", b"s1")], ""),
                (topic, None, b"{not json", [("ce_sagaid", b"s1")], "not valid JSON"),
                (topic, None, b'{"a": "\xff"}', [], "not valid UTF-8"),
                (topic, None, big, [], "exceeds the"),
                (topic, None, b"{}", [("traceparent", b"00-nope-01")], "malformed traceparent"),
                (topic, None, b"{}", [], ""),
                (
                    telemetry,
                    b"a" * 32,
                    json.dumps(span).encode(),
                    [("ce_type", b"sagascope.span.v1")],
                    "",
                ),
                (telemetry, None, b"garbage", [], "not valid JSON"),
            ],
            log,
        )
    settings = collector_settings(
        include=f"({prefix_of(topic)}|{prefix_of(telemetry)}).*",
        telemetry_topic=telemetry,
    )
    collector = Collector(store, bootstrap_servers, settings)
    with running(collector):
        wait_until(
            lambda: (
                len(stored_offsets(store, "messages", topic)) == 6
                and len(stored_offsets(store, "spans", telemetry)) == 2
            ),
            60,
            "6 messages and 2 spans",
        )
    errors = dict(
        ((topic, int(p), int(o)), e)
        for p, o, e in store.query(
            "SELECT partition, offset, parse_error FROM messages WHERE topic = {t:String}",
            {"t": topic},
        ).rows
    )
    errors.update(
        ((telemetry, int(p), int(o)), e)
        for p, o, e in store.query(
            "SELECT partition, offset, parse_error FROM spans WHERE topic = {t:String}",
            {"t": telemetry},
        ).rows
    )
    assert set(errors) == log.acked
    for where, error in errors.items():
        expected = log.bad.get(where, "")
        assert (expected in error) if expected else error == "", (where, error)
    big_row = store.query(
        "SELECT payload_size, payload_truncated, length(payload) FROM messages "
        "WHERE topic = {t:String} AND payload_size > 1000000",
        {"t": topic},
    ).rows
    assert big_row == [(len(big), True, 65536)]
    (stored_span,) = store.query(
        "SELECT name, service, attributes FROM spans WHERE topic = {t:String} AND parse_error = ''",
        {"t": telemetry},
    ).rows
    assert stored_span == ("pay", "payment", {"k": "v"})
    assert collector.metrics.value("parse_errors") == 5


def test_the_store_not_kafka_decides_where_partitions_resume(
    store, bootstrap_servers, make_topic, collector_settings
):
    """A collector whose offsets were never committed (a crash between insert and commit, here
    a fresh group) must not store again what the store already holds."""
    topic = make_topic("resume", partitions=2)
    log = ProducedLog()
    with producer(bootstrap_servers) as p:
        send_all(p, [(topic, None, b'{"n": %d}' % i, [], "") for i in range(40)], log)
    first = Collector(store, bootstrap_servers, collector_settings(include=topic))
    first.start()
    try:
        wait_until(lambda: len(stored_offsets(store, "messages", topic)) == 40, 60, "first 40 rows")
    finally:
        first.stop()
    with producer(bootstrap_servers) as p:
        send_all(p, [(topic, None, b'{"n": %d}' % i, [], "") for i in range(40, 60)], log)
    second = Collector(store, bootstrap_servers, collector_settings(include=topic))
    second.start()
    try:
        wait_until(lambda: len(stored_offsets(store, "messages", topic)) >= 60, 60, "all 60 rows")
        wait_until(lambda: second.metrics.value("stored") >= 20, 10, "second collector's rows")
    finally:
        second.stop()
    rows = stored_offsets(store, "messages", topic)
    assert len(rows) == len(set(rows)) == 60
    assert set(rows) == log.acked
    assert second.metrics.value("stored") == 20
    assert verify(store, topic).ok  # the chain continues across collectors
