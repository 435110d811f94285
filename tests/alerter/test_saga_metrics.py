"""Saga metrics: the query layer's snapshot and the Prometheus collector over a real chDB store."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from seeding import SagaScript, order_saga, seed, seed_scenarios

from sagascope.alerter.saga_metrics import (
    SagaMetricsCollector,
    saga_metrics_registry,
    serve_saga_metrics,
)
from sagascope.queries import SagaFilter, SagaQueries
from sagascope.queries.exceptions import QueryError


def _samples(collector: SagaMetricsCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(saga_metrics_registry(collector)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_the_snapshot_agrees_with_status_counts_and_stalled(store):
    seed_scenarios(store)
    queries = SagaQueries(store)
    m = queries.metrics()
    counts = queries.status_counts()
    by_status: dict[str, int] = {}
    for (_, status), n in m.sagas.items():
        by_status[status] = by_status.get(status, 0) + n
    assert by_status == {s: n for s, n in counts.items() if n}
    stalled = queries.stalled()
    assert sum(m.stalled.values()) == len(stalled) == 1
    assert m.stalled == {("order-fulfillment", stalled[0].step): 1}
    assert m.started == {"order-fulfillment": 6}
    assert m.finished == {
        ("order-fulfillment", "completed"): 1,
        ("order-fulfillment", "failed"): 1,
        ("order-fulfillment", "compensated"): 1,
    }


def test_cycle_times_fall_in_the_bucket_of_their_duration(store):
    start = datetime.now(UTC) - timedelta(days=2)
    # Completed sagas of 7 s and 7000 s (7 steps), a failed one of 4000 s (4 steps).
    seed(store, order_saga("fast", start=start, step_s=1.0))
    seed(store, order_saga("slow", start=start, step_s=1000.0))
    seed(store, order_saga("slow-failed", "failed", start=start, step_s=1000.0))
    m = SagaQueries(store).metrics(cycle_time_buckets_s=(10, 5000, 7200))
    hist = m.cycle_times["order-fulfillment"]
    assert hist.counts == [1, 1, 1, 0]  # <=10 s, <=5000 s, <=2 h, above
    assert hist.cumulative() == [1, 2, 3, 3]
    durations = {s.saga_id: s.duration_s for s in SagaQueries(store).sagas(SagaFilter())}
    assert hist.sum_s == pytest.approx(sum(durations.values()))


def test_bad_buckets_are_refused(store):
    with pytest.raises(QueryError, match="increasing"):
        SagaQueries(store).metrics(cycle_time_buckets_s=(60, 5))


def test_open_alerts_and_freshness_come_from_the_store(store):
    now = datetime.now(UTC)
    saga = order_saga("order-f", start=now - timedelta(minutes=30))
    seed(store, saga)
    store.insert("alerts", [{
        "alert_id": "a1", "state": "open", "saga_id": "x", "saga_type": "trip-booking",
        "step": "BookFlight", "waiting_for": "", "since": now, "threshold_s": 1.0,
        "opened_at": now, "resolved_at": None, "resolution": "", "link": "", "updated_at": now,
    }])
    m = SagaQueries(store).metrics()
    assert m.open_alerts == {"trip-booking": 1}
    newest = max(r["kafka_time"] for r in saga.rows)
    assert m.newest_message is not None
    assert abs((m.newest_message - newest).total_seconds()) < 0.001
    assert m.watermark is None  # no collector progress


def test_open_alerts_of_silenced_groups_are_counted_apart(store):
    from sagascope.queries import acknowledge

    now = datetime.now(UTC)
    store.insert("alerts", [{
        "alert_id": f"a-{step}", "state": "open", "saga_id": f"x-{step}",
        "saga_type": "trip-booking", "step": step, "waiting_for": "", "since": now,
        "threshold_s": 1.0, "opened_at": now, "resolved_at": None, "resolution": "", "link": "",
        "updated_at": now,
    } for step in ("BookFlight", "BookHotel")])
    acknowledge(store, "trip-booking", "BookHotel", action="silenced", by="dana",
                until=now + timedelta(hours=1))
    samples = _samples(SagaMetricsCollector(SagaQueries(store)))
    assert _get(samples, "sagascope_alerts_open", saga_type="trip-booking") == 1
    assert _get(samples, "sagascope_alerts_silenced", saga_type="trip-booking") == 1


def test_the_exposition_has_bounded_labels_and_every_metric(store):
    seed_scenarios(store)
    samples = _samples(SagaMetricsCollector(SagaQueries(store)))
    names = {name for name, _ in samples}
    assert {
        "sagascope_sagas", "sagascope_sagas_stalled", "sagascope_sagas_started_total",
        "sagascope_sagas_finished_total", "sagascope_saga_cycle_time_seconds_bucket",
        "sagascope_saga_cycle_time_seconds_count", "sagascope_saga_cycle_time_seconds_sum",
        "sagascope_newest_message_age_seconds", "sagascope_saga_metrics_up",
        "sagascope_saga_metrics_query_seconds",
    } <= names
    assert all("saga_id" not in dict(labels) for _, labels in samples)
    assert _get(samples, "sagascope_sagas_started_total", saga_type="order-fulfillment") == 6
    assert _get(samples, "sagascope_sagas", saga_type="order-fulfillment", status="stalled") == 1
    assert _get(samples, "sagascope_saga_cycle_time_seconds_count",
                saga_type="order-fulfillment") == 3
    assert _get(samples, "sagascope_saga_cycle_time_seconds_bucket",
                saga_type="order-fulfillment", le="+Inf") == 3


def test_counters_never_go_down_when_a_saga_leaves_its_outcome(store):
    # Recent: compensating, not stalled, once the refund is asked for.
    saga = SagaScript("order-undo", start=datetime.now(UTC) - timedelta(seconds=30))
    saga.event("OrderPlaced", "orders", step="place-order", after_s=0)
    saga.event("PaymentFailed", "payment", step="payment", status="failed")
    seed(store, saga)
    collector = SagaMetricsCollector(SagaQueries(store), max_age_s=0)
    before = _samples(collector)
    assert _get(before, "sagascope_sagas_finished_total",
                saga_type="order-fulfillment", outcome="failed") == 1
    # The failed saga starts compensating: no longer finished in the store.
    already = len(saga.rows)
    saga.command("RefundPayment", "orchestrator", step="refund", status="compensating")
    store.insert("messages", saga.rows[already:])
    after = _samples(collector)
    assert _get(after, "sagascope_sagas", saga_type="order-fulfillment", status="compensating") == 1
    assert ("sagascope_sagas", (("saga_type", "order-fulfillment"), ("status", "failed"))) not in after
    assert _get(after, "sagascope_sagas_finished_total",
                saga_type="order-fulfillment", outcome="failed") == 1
    assert _get(after, "sagascope_saga_cycle_time_seconds_count",
                saga_type="order-fulfillment") == 1


def test_a_store_that_fails_answers_with_up_zero(store):
    seed(store, order_saga("order-gone"))
    collector = SagaMetricsCollector(SagaQueries(store), max_age_s=0)
    assert _get(_samples(collector), "sagascope_saga_metrics_up") == 1
    store.command(f"DROP DATABASE {store.database}")
    assert _samples(collector) == {("sagascope_saga_metrics_up", ()): 0.0}
    assert collector.failed_scrapes == 1


def test_a_snapshot_is_reused_within_max_age(store):
    seed(store, order_saga("order-c1"))
    now = [0.0]
    collector = SagaMetricsCollector(SagaQueries(store), max_age_s=5, clock=lambda: now[0])
    assert _get(_samples(collector), "sagascope_sagas_started_total",
                saga_type="order-fulfillment") == 1
    seed(store, order_saga("order-c2"))
    assert _get(_samples(collector), "sagascope_sagas_started_total",
                saga_type="order-fulfillment") == 1
    now[0] = 6.0
    assert _get(_samples(collector), "sagascope_sagas_started_total",
                saga_type="order-fulfillment") == 2


def test_the_endpoint_serves_the_text_format(store):
    seed_scenarios(store)
    server = serve_saga_metrics(SagaQueries(store), 0)
    try:
        with urllib.request.urlopen(server.url, timeout=10) as response:
            body = response.read().decode()
    finally:
        server.close()
    assert '# TYPE sagascope_sagas_started_total counter' in body
    assert 'sagascope_sagas_stalled{saga_type="order-fulfillment",step="payment"} 1.0' in body


def test_alert_names_the_metrics_port_setting_when_the_port_is_taken(
    store, chdb_path, tmp_path, monkeypatch, capsys
):
    import socket

    from sagascope.cli import main

    monkeypatch.chdir(tmp_path)  # no stray ./sagascope.toml
    monkeypatch.delenv("SAGASCOPE_CONFIG", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["alert", "--metrics-port", str(port), "--store-path", chdb_path,
                     "--database", store.database])
    assert code == 2
    assert "alerts.metrics_port" in capsys.readouterr().err
