"""Alert lifecycle against a real chDB store with seeded sagas: open once, resolve, history."""

from __future__ import annotations

import itertools
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from alert_sinks import RecordingSink
from seeding import SagaScript, order_saga, seed
from waiting import wait_until

from sagascope.alerter import Alerter, WebhookSink
from sagascope.alerter.thresholds import percentile_of
from sagascope.queries import SagaQueries, list_alerts
from sagascope.settings import AlertSettings, ThresholdRule

_progress_version = itertools.count(1)


def set_watermark(store, read_until: datetime) -> None:
    """What the collector writes after a batch: everything before ``read_until`` is stored."""
    store.insert(
        "progress",
        [{
            "group_id": "g", "collector_id": "c", "topic": "orders", "partition": 0,
            "stored_offset": 0, "end_offset": 0, "read_until": read_until,
            "updated_at": datetime.now(UTC) + timedelta(milliseconds=next(_progress_version)),
        }],
    )


@pytest.fixture
def make_alerter():
    """An Alerter with a recording sink, and the sink."""

    def make(store, **settings):
        sink = RecordingSink()
        alert_settings = AlertSettings(**{"default_threshold_s": 60.0, "interval_s": 0.5, **settings})
        alerter = Alerter(
            store, SagaQueries(store), alert_settings, [sink], "http://dash.example:8501/"
        )
        return alerter, sink

    return make


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def test_stalled_saga_opens_one_alert_with_its_details(store, now, make_alerter):
    seed(store, order_saga("order/1 a", "stalled", start=now - timedelta(hours=1)))
    set_watermark(store, now)
    alerter, sink = make_alerter(store)

    first = alerter.evaluate_once()
    assert [a.saga_id for a in first.opened] == ["order/1 a"]
    alert = first.opened[0]
    assert alert.saga_type == "order-fulfillment"
    assert alert.step == "payment" and alert.last_type == "RetrievePayment"
    assert alert.waiting_for
    assert alert.threshold_s == 60.0 and alert.threshold_source == "default"
    assert alert.since == now - timedelta(hours=1) + timedelta(seconds=3)
    assert alert.link == "http://dash.example:8501/flow_explorer?saga=order%2F1%20a"

    second = alerter.evaluate_once()
    assert second.opened == [] and second.open == 1
    assert [a.event for a in sink.sent] == ["opened"]
    (stored,) = list_alerts(store)
    assert (stored.state, stored.saga_id, stored.step, stored.since) == (
        "open", "order/1 a", "payment", alert.since,
    )


def test_finished_and_recent_sagas_never_alert(store, now, make_alerter):
    start = now - timedelta(hours=1)
    seed(
        store,
        order_saga("done", "completed", start=start),
        order_saga("declined", "failed", start=start),
        order_saga("undone", "compensated", start=start),
        order_saga("fresh", "running", start=now - timedelta(seconds=5)),
    )
    set_watermark(store, now)
    alerter, sink = make_alerter(store)
    assert alerter.evaluate_once().opened == []
    assert sink.sent == [] and list_alerts(store) == []


def test_alert_resolves_when_saga_finishes(store, now, make_alerter):
    saga = order_saga("order-2", "stalled", start=now - timedelta(hours=1))
    seed(store, saga)
    set_watermark(store, now)
    alerter, sink = make_alerter(store)
    (opened,) = alerter.evaluate_once().opened

    resumed = SagaScript("order-2", start=now)
    resumed.event("PaymentReceived", "payment", step="payment", after_s=1, caused_by="")
    resumed.event("OrderCompleted", "orchestrator", step="complete", status="completed")
    seed(store, resumed)
    set_watermark(store, now + timedelta(seconds=10))

    (resolved,) = alerter.evaluate_once().resolved
    assert resolved.alert_id == opened.alert_id
    assert resolved.resolution == "completed"
    assert resolved.resolved_at is not None and resolved.resolved_at >= resolved.opened_at
    assert [a.event for a in sink.sent] == ["opened", "resolved"]
    (stored,) = list_alerts(store)
    assert (stored.state, stored.resolution) == ("resolved", "completed")
    assert alerter.evaluate_once().resolved == []


def test_saga_stalled_again_at_a_later_step_gets_a_new_alert(store, now, make_alerter):
    seed(store, order_saga("order-3", "stalled", start=now - timedelta(hours=2)))
    set_watermark(store, now - timedelta(hours=1))
    alerter, _sink = make_alerter(store)
    (first,) = alerter.evaluate_once().opened

    later = SagaScript("order-3", start=now - timedelta(minutes=30))
    later.event("PaymentReceived", "payment", step="payment", after_s=0, caused_by="")
    later.command("ShipOrder", "orchestrator", step="shipping")
    seed(store, later)
    set_watermark(store, now)

    result = alerter.evaluate_once()
    assert [(a.alert_id, a.resolution) for a in result.resolved] == [(first.alert_id, "moved on")]
    (second,) = result.opened
    assert second.alert_id != first.alert_id and second.step == "shipping"
    assert {(a.state, a.step) for a in list_alerts(store)} == {
        ("resolved", "payment"), ("open", "shipping"),
    }


def test_silence_counts_only_up_to_the_collector_watermark(store, now, make_alerter):
    # By the wall clock the saga is silent for 10 minutes, but the collector has read only
    # up to 30 s after its last message: it may simply not have seen the reply yet.
    start = now - timedelta(minutes=10)
    seed(store, order_saga("order-4", "stalled", start=start))
    last = start + timedelta(seconds=3)
    set_watermark(store, last + timedelta(seconds=30))
    alerter, sink = make_alerter(store, default_threshold_s=120.0)
    assert alerter.evaluate_once().opened == [] and sink.sent == []

    set_watermark(store, now)
    assert [a.saga_id for a in alerter.evaluate_once().opened] == ["order-4"]
    assert len(sink.sent) == 1


def test_restarted_alerter_does_not_repeat_open_alerts(store, now, make_alerter):
    seed(store, order_saga("order-5", "stalled", start=now - timedelta(hours=1)))
    set_watermark(store, now)
    first, _ = make_alerter(store)
    assert len(first.evaluate_once().opened) == 1
    second, sink = make_alerter(store)
    assert second.evaluate_once().opened == [] and sink.sent == []


def test_explicit_rule_sets_the_threshold_per_type_and_step(store, now, make_alerter):
    start = now - timedelta(seconds=100)
    seed(store, order_saga("order-6", "stalled", start=start))
    set_watermark(store, now)
    # Silent ~97 s: past the rule's 90 s, under the 300 s default.
    alerter, _ = make_alerter(
        store,
        default_threshold_s=300.0,
        rules=(ThresholdRule(saga_type="order-fulfillment", step="payment", threshold_s=90),),
    )
    (alert,) = alerter.evaluate_once().opened
    assert (alert.threshold_s, alert.threshold_source) == (90, "rule")
    strict, _ = make_alerter(
        store,
        default_threshold_s=300.0,
        rules=(ThresholdRule(saga_type="order-fulfillment", step="shipping", threshold_s=90),),
    )
    # Under this rule the saga is not past its threshold: no new alert, and since it did not
    # move on, the open one stays open.
    result = strict.evaluate_once()
    assert result.opened == [] and result.resolved == [] and result.open == 1


def test_dead_webhook_is_retried_while_evaluation_goes_on(store, now, down_receiver):
    seed(store, [order_saga(f"order-w{i}", "stalled", start=now - timedelta(hours=1)) for i in range(5)])
    set_watermark(store, now)
    webhook = WebhookSink(down_receiver.url, timeout_s=1, retries=30, backoff_s=0.05, backoff_max_s=0.2)
    alerter = Alerter(
        store, SagaQueries(store), AlertSettings(default_threshold_s=60, interval_s=0.2), [webhook], "http://d"
    )
    stop = threading.Event()
    alerter.start(stop)
    try:
        wait_until(
            lambda: alerter.evaluations >= 3, timeout_s=20, what="evaluations while the webhook is down"
        )
        assert len(list_alerts(store, state="open")) == 5
        assert webhook.stats.delivered == 0 and webhook.stats.retried >= 1
        down_receiver.start()
        got = down_receiver.wait_for(5)
    finally:
        stop.set()
        alerter.close()
    assert sorted(b["saga_id"] for b in got) == [f"order-w{i}" for i in range(5)]
    assert all(b["event"] == "opened" for b in got)


def test_learned_threshold_is_within_20_percent_of_percentile_times_factor(store, now, make_alerter):
    rng = random.Random(5)
    waits = [rng.uniform(1.0, 3.0) for _ in range(200)]
    sagas = []
    for i, wait in enumerate(waits):
        saga = SagaScript(f"learn-{i}", "learn-flow", start=now - timedelta(hours=2, seconds=i * 10))
        saga.command("Charge", "orchestrator", step="charge", after_s=0)
        saga.event("Charged", "payment", step="charged", after_s=wait)
        saga.event("Done", "orchestrator", step="done", after_s=0.5, status="completed")
        sagas.append(saga)
    seed(store, sagas)
    set_watermark(store, now)
    rule = ThresholdRule(saga_type="learn-flow", learn_percentile=95, learn_factor=2.0,
                     learn_floor_s=0.5, learn_min_samples=50)
    alerter, _ = make_alerter(store, rules=(rule,), default_threshold_s=600.0)
    learned = alerter.refresh_thresholds(now)

    expected = percentile_of(waits, 95) * 2.0
    charge = learned[("learn-flow", "charge")]
    assert charge.source == "learned" and charge.samples == 200
    assert charge.threshold_s == pytest.approx(expected, rel=0.2)
    # 0.5 s waits: 2 x 0.5 = 1.0
    assert learned[("learn-flow", "charged")].threshold_s == pytest.approx(1.0, rel=0.2)
    assert alerter.thresholds.for_step("learn-flow", "charge") == charge


def test_learned_threshold_needs_its_minimum_samples(store, now, make_alerter):
    sagas = []
    for i in range(5):
        saga = SagaScript(f"few-{i}", "few-flow", start=now - timedelta(hours=1, seconds=i))
        saga.command("Charge", "orchestrator", step="charge", after_s=0)
        saga.event("Charged", "payment", step="charged", after_s=1.0, status="completed")
        sagas.append(saga)
    seed(store, sagas)
    set_watermark(store, now)
    rule = ThresholdRule(learn_percentile=95, learn_min_samples=20, threshold_s=42)
    alerter, _ = make_alerter(store, rules=(rule,))
    learned = alerter.refresh_thresholds(now)
    assert (learned[("few-flow", "charge")].threshold_s, learned[("few-flow", "charge")].source) == (
        42, "rule",
    )


def test_a_silenced_group_is_recorded_but_not_notified_until_the_silence_ends(store, now, make_alerter):
    from sagascope.queries import acknowledge

    seed(store, order_saga("silenced-1", "stalled", start=now - timedelta(hours=1)))
    set_watermark(store, now)
    alerter, sink = make_alerter(store)
    acknowledge(store, "order-fulfillment", "payment", action="silenced", by="oncall",
                until=datetime.now(UTC) + timedelta(seconds=2), now=now)

    during = alerter.evaluate_once()
    assert [a.saga_id for a in during.opened] == ["silenced-1"] and during.silenced == 1
    assert sink.sent == []
    assert [a.saga_id for a in list_alerts(store, state="open")] == ["silenced-1"]

    acknowledge(store, "order-fulfillment", "payment", action="acknowledged", by="oncall",
                now=now + timedelta(seconds=1))
    seed(store, order_saga("silenced-2", "stalled", start=now - timedelta(minutes=30)))
    after = alerter.evaluate_once()
    assert [a.saga_id for a in after.opened] == ["silenced-2"] and after.silenced == 0
    assert [a.saga_id for a in sink.sent] == ["silenced-2"]  # acknowledging does not silence
