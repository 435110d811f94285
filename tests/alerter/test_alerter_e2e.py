"""End to end: real broker, real collector, real store; services that drop messages."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from alert_sinks import RecordingSink
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from waiting import collect, polled, wait_until

from sagascope.alerter import Alerter, KafkaSink, WebhookSink
from sagascope.collector import Collector
from sagascope.instrumentation import contract
from sagascope.queries import SagaQueries, list_alerts
from sagascope.settings import AlertSettings, CollectorSettings

pytestmark = pytest.mark.slow

FLOW = "order-fulfillment"


class Services:
    """The orchestrator and payment service of an order flow, as records on one topic."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=5, acks=1)
        self.last_id: dict[str, str] = {}

    def send(self, saga_id: str, type_: str, source: str, kind: str, step: str, status: str = "") -> None:
        message_id = contract.new_message_id()
        headers = {
            contract.TRACEPARENT: f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
            contract.CE_SPECVERSION: contract.SPECVERSION,
            contract.CE_ID: message_id,
            contract.CE_SOURCE: source,
            contract.CE_TYPE: type_,
            contract.CE_TIME: contract.format_time(),
            contract.CE_SAGAID: saga_id,
            contract.CE_SAGATYPE: FLOW,
            contract.CE_KIND: kind,
            contract.CE_CAUSATIONID: self.last_id.get(saga_id, ""),
            contract.CE_STEP: step,
        }
        if status:
            headers[contract.CE_SAGASTATUS] = status
        self.last_id[saga_id] = message_id
        self.producer.send(
            self.topic, key=saga_id.encode(), value=b'{"order": "%s"}' % saga_id.encode(),
            headers=[(k, v.encode()) for k, v in headers.items() if v],
        )

    def ask_payment(self, saga_id: str) -> None:
        self.send(saga_id, "RetrievePayment", "orchestrator", "command", "payment")

    def pay_and_complete(self, saga_id: str) -> None:
        self.send(saga_id, "PaymentReceived", "payment", "event", "payment")
        self.send(saga_id, "OrderCompleted", "orchestrator", "event", "complete", "completed")

    def flush(self) -> None:
        self.producer.flush(timeout=30)

    def close(self) -> None:
        self.producer.close(timeout=10)


@pytest.fixture
def pipeline(store, bootstrap_servers, make_topic, request) -> Iterator[tuple[Services, CollectorSettings]]:
    topic = make_topic("orders", partitions=2)
    settings = CollectorSettings(
        group_id=f"alerter-{request.node.name[:30]}-{uuid.uuid4().hex[:6]}",
        include=f"^{re.escape(topic)}$",
        flush_interval_s=0.2,
        max_poll_interval_ms=3000,
        session_timeout_ms=3000,
    )
    services = Services(bootstrap_servers, topic)
    yield services, settings
    services.close()


@contextmanager
def running_collector(store, bootstrap_servers: str, settings: CollectorSettings) -> Iterator[Collector]:
    collector = Collector(store, bootstrap_servers, settings)
    collector.start()
    try:
        assert collector.ready.wait(60), "collector never got its partitions"
        yield collector
    finally:
        collector.stop()


@contextmanager
def running_alerter(alerter: Alerter) -> Iterator[Alerter]:
    stop = threading.Event()
    thread = alerter.start(stop)
    try:
        yield alerter
    finally:
        stop.set()
        thread.join(10)
        alerter.close()


def read_topic(bootstrap_servers: str, topic: str, expected: int) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        return collect(lambda: polled(consumer, 500), expected, 30)
    finally:
        consumer.close()


def stored_count(store, saga_id: str) -> int:
    return int(store.query(
        "SELECT count() FROM messages WHERE saga_id = {s:String}", {"s": saga_id}
    ).scalar())


def test_stalled_sagas_alert_once_finished_never_and_resumed_resolve(
    store, bootstrap_servers, pipeline, receiver, make_topic
):
    services, collector_settings = pipeline
    threshold_s, interval_s = 2.0, 0.5
    recording = RecordingSink()
    webhook = WebhookSink(receiver.url, timeout_s=2, retries=5, backoff_s=0.1)
    alert_topic = make_topic("alerts")
    kafka = KafkaSink(bootstrap_servers, alert_topic, timeout_s=10, retries=5, backoff_s=0.1)
    alerter = Alerter(
        store, SagaQueries(store),
        AlertSettings(default_threshold_s=threshold_s, interval_s=interval_s),
        [webhook, kafka, recording], "http://127.0.0.1:8501",
    )
    dropped = [f"drop-{i}" for i in range(50)]
    finished = [f"done-{i}" for i in range(10)]
    with running_collector(store, bootstrap_servers, collector_settings), running_alerter(alerter):
        for saga_id in [*dropped, *finished, "late-1"]:
            services.ask_payment(saga_id)
        for saga_id in finished:
            services.pay_and_complete(saga_id)
        services.flush()

        wait_until(lambda: len(recording.sent) >= 51, timeout_s=60, what="51 alerts opened")
        opened = {a.saga_id: a for a in recording.sent}
        assert set(opened) == {*dropped, "late-1"}
        for alert in opened.values():
            # Opened at an evaluation soon after the threshold passed (not several thresholds
            # later); the slack covers evaluations delayed on a loaded 2-core machine (3.64 s
            # was seen against the old 3.5 s bound), the collector's read lag on the wall clock.
            assert alert.silent_s <= threshold_s + interval_s + 5.0, alert
            late = (alert.opened_at - alert.since).total_seconds()
            assert late <= threshold_s + interval_s + 5.0, alert
            assert alert.step == "payment" and alert.last_type == "RetrievePayment"
            assert "RetrievePayment" in alert.waiting_for

        services.pay_and_complete("late-1")
        services.flush()
        wait_until(
            lambda: any(a.state == "resolved" for a in recording.sent), timeout_s=30,
            what="the resumed saga's alert resolved",
        )
        seen = alerter.evaluations
        wait_until(lambda: alerter.evaluations >= seen + 3, timeout_s=20, what="three more evaluations")
        assert webhook.flush(20) and kafka.flush(30)

    events = Counter((a.saga_id, a.event) for a in recording.sent)
    assert all(n == 1 for n in events.values()), "an alert was repeated"
    assert events[("late-1", "resolved")] == 1
    (resolved,) = [a for a in recording.sent if a.state == "resolved"]
    # The reply and the completion may reach the store in separate batches.
    assert resolved.resolution in ("moved on", "completed")
    assert sorted(b["saga_id"] for b in receiver.received if b["event"] == "opened") == sorted(
        [*dropped, "late-1"]
    )
    table = list_alerts(store, limit=None)
    assert Counter(a.state for a in table) == {"open": 50, "resolved": 1}
    on_topic = Counter(json.loads(r.value)["event"] for r in read_topic(bootstrap_servers, alert_topic, 52))
    assert on_topic == {"opened": 51, "resolved": 1}


def test_paused_collector_raises_no_false_alerts(
    store, bootstrap_servers, pipeline
):
    services, collector_settings = pipeline
    threshold_s = 1.5
    recording = RecordingSink()
    alerter = Alerter(
        store, SagaQueries(store), AlertSettings(default_threshold_s=threshold_s, interval_s=0.3),
        [recording], "http://127.0.0.1:8501",
    )
    with running_alerter(alerter):
        with running_collector(store, bootstrap_servers, collector_settings):
            services.ask_payment("slow-1")
            services.ask_payment("dropped-1")
            services.flush()
            wait_until(
                lambda: stored_count(store, "slow-1") and stored_count(store, "dropped-1"),
                timeout_s=20, what="both commands stored",
            )
        # The collector is stopped: the payment service answers, nobody reads it.
        services.pay_and_complete("slow-1")
        services.flush()
        paused_at = time.monotonic()
        seen = alerter.evaluations
        wait_until(
            lambda: time.monotonic() - paused_at > 3 * threshold_s and alerter.evaluations > seen + 3,
            timeout_s=20, what="evaluations over three thresholds of collector pause",
        )
        assert recording.sent == [], "alert raised for silence the collector had not read"
        assert stored_count(store, "slow-1") == 1

        with running_collector(store, bootstrap_servers, collector_settings):
            wait_until(lambda: stored_count(store, "slow-1") == 3, timeout_s=20, what="the reply caught up")
            # The saga that really stalled alerts once the collector caught up.
            wait_until(lambda: recording.sent, timeout_s=30, what="the dropped saga's alert")
    assert [(a.saga_id, a.event) for a in recording.sent] == [("dropped-1", "opened")]
    assert datetime.now(UTC) > recording.sent[0].since
