"""Sinks: webhook to a real loopback receiver (with retries), Kafka to a real topic, the log."""

from __future__ import annotations

import json
import logging
import socket
import threading

import pytest
from kafka import KafkaConsumer, TopicPartition
from waiting import wait_until

from sagascope.alerter import KafkaSink, LogSink, WebhookSink, build_sinks
from sagascope.exceptions import ConfigError
from sagascope.settings import AlertSettings


def test_webhook_posts_alert_as_json(receiver, make_alert):
    sink = WebhookSink(receiver.url, timeout_s=2, retries=2, backoff_s=0.05)
    sink.send(make_alert("order-7"))
    (body,) = receiver.wait_for(1)
    sink.close()
    assert body["event"] == "opened"
    assert body["saga_id"] == "order-7"
    assert body["step"] == "RetrievePayment"
    assert body["waiting_for"] == "PaymentReceived"
    assert body["threshold_s"] == 2.0
    assert body["link"].endswith("/flow_explorer?saga=order-7")
    assert body["since"].endswith("Z")


def test_webhook_retries_until_receiver_comes_up(down_receiver, make_alert):
    sink = WebhookSink(down_receiver.url, timeout_s=1, retries=20, backoff_s=0.05, backoff_max_s=0.2)
    for i in range(3):
        sink.send(make_alert(f"order-{i}"))  # returns at once although nobody listens
    assert not sink.flush(0.3)
    assert sink.stats.retried >= 1 and sink.stats.delivered == 0
    down_receiver.start()
    got = down_receiver.wait_for(3)
    assert sorted(b["saga_id"] for b in got) == ["order-0", "order-1", "order-2"]
    assert sink.flush(5)
    sink.close()
    assert sink.stats.delivered == 3 and sink.stats.failed == 0


def test_webhook_retries_server_errors(receiver, make_alert):
    receiver.fail_with = [503, 500]
    sink = WebhookSink(receiver.url, timeout_s=2, retries=5, backoff_s=0.02)
    sink.send(make_alert())
    receiver.wait_for(1)
    sink.close()
    assert receiver.requests == 3
    assert sink.stats.retried == 2 and sink.stats.delivered == 1


def test_webhook_does_not_retry_client_errors(receiver, make_alert):
    receiver.fail_with = [400]
    sink = WebhookSink(receiver.url, timeout_s=2, retries=5, backoff_s=0.02)
    sink.send(make_alert())
    assert sink.flush(5)
    sink.close()
    assert receiver.requests == 1
    assert sink.stats.failed == 1 and sink.stats.retried == 0


def test_webhook_gives_up_after_its_retries(down_receiver, make_alert, caplog):
    sink = WebhookSink(down_receiver.url, timeout_s=1, retries=2, backoff_s=0.02)
    with caplog.at_level(logging.ERROR, logger="sagascope.alerter.sinks"):
        sink.send(make_alert("order-lost"))
        assert sink.flush(10)
    sink.close()
    assert sink.stats.attempts == 3 and sink.stats.failed == 1
    assert "gave up" in caplog.text and "order-lost" in caplog.text


def test_hanging_webhook_does_not_block_send(make_alert):
    # A server that accepts connections and never answers.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    sink = WebhookSink(f"http://127.0.0.1:{port}/", timeout_s=0.5, retries=1, backoff_s=0.02)
    try:
        done = threading.Event()

        def send_many() -> None:
            for i in range(20):
                sink.send(make_alert(f"order-{i}"))
            done.set()

        threading.Thread(target=send_many, daemon=True).start()
        # All 20 are queued while the first delivery is still waiting on the dead server.
        assert done.wait(5)
        assert sink.stats.delivered == 0
    finally:
        sink.close(timeout_s=0.2)
        # The delivery in flight at close times out and is given up, not retried.
        wait_until(lambda: sink.stats.failed == 20, timeout_s=20, what="in-flight delivery given up")
        listener.close()
    assert sink.stats.delivered == 0


def test_full_queue_counts_dropped_alerts(down_receiver, make_alert, caplog):
    sink = WebhookSink(down_receiver.url, retries=50, backoff_s=1.0, max_queue=2)
    with caplog.at_level(logging.ERROR, logger="sagascope.alerter.sinks"):
        for i in range(5):
            sink.send(make_alert(f"order-{i}"))
    sink.close(timeout_s=0.1)
    assert sink.stats.dropped == 3
    assert "queue full" in caplog.text


def test_kafka_sink_produces_alert_to_topic(bootstrap_servers, make_topic, make_alert):
    topic = make_topic("alerts")
    sink = KafkaSink(bootstrap_servers, topic, timeout_s=10, retries=3, backoff_s=0.1)
    sink.send(make_alert("order-9"))
    sink.send(make_alert("order-9", state="resolved", resolution="completed"))
    assert sink.flush(30)
    sink.close()
    assert sink.stats.delivered == 2
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        records = []
        for _ in range(50):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
            if len(records) >= 2:
                break
    finally:
        consumer.close()
    assert [json.loads(r.value)["event"] for r in records] == ["opened", "resolved"]
    assert {r.key for r in records} == {b"order-9"}
    assert (("ce_type", b"sagascope.alert.v1")) in records[0].headers


def test_log_sink_logs_opened_and_resolved(make_alert, caplog):
    sink = LogSink()
    with caplog.at_level(logging.INFO, logger="sagascope.alerter.sinks"):
        sink.send(make_alert("order-3"))
        sink.send(make_alert("order-3", state="resolved", resolution="completed"))
    opened, resolved = caplog.records
    assert opened.levelno == logging.WARNING and "order-3" in opened.getMessage()
    assert resolved.levelno == logging.INFO and "completed" in resolved.getMessage()


def test_build_sinks_builds_several_at_once():
    settings = AlertSettings(sinks="log, webhook,kafka", webhook_url="http://127.0.0.1:1/x")
    sinks = build_sinks(settings, bootstrap_servers="127.0.0.1:9092")
    assert [s.name for s in sinks] == ["log", "webhook", "kafka"]


@pytest.mark.parametrize(
    ("settings", "bootstrap", "message"),
    [
        (AlertSettings(sinks="log,pager"), "", "alerts.sinks"),
        (AlertSettings(sinks="webhook"), "", "alerts.webhook_url"),
        (AlertSettings(sinks="webhook", webhook_url="ftp://x"), "", "alerts.webhook_url"),
        (AlertSettings(sinks="kafka"), "", "broker.bootstrap_servers"),
        (AlertSettings(sinks="webhook", webhook_url="http://h/", retry_backoff_s=0), "", "retry_backoff_s"),
    ],
)
def test_build_sinks_names_the_bad_setting(settings, bootstrap, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build_sinks(settings, bootstrap_servers=bootstrap)
