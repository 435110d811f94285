"""Analytics: cycle times, transitions, failures, compensation pairing, process map, variants."""

from __future__ import annotations

from datetime import timedelta

import pytest
from seeding import SagaScript, order_saga, seed

from sagascope.queries import QueryError, SagaFilter, SagaQueries


@pytest.fixture
def history(store, now):
    """Four completed orders taking 7, 14, 21, 28 s, one failed, one compensated, one running."""
    sagas = [
        order_saga(f"o-{i}", "completed", start=now - timedelta(hours=2, minutes=i), step_s=i)
        for i in (1, 2, 3, 4)
    ]
    sagas.append(order_saga("o-failed", "failed", start=now - timedelta(hours=1)))
    sagas.append(order_saga("o-comp", "compensated", start=now - timedelta(hours=1)))
    sagas.append(order_saga("o-run", "running", start=now - timedelta(seconds=5)))
    seed(store, sagas)
    return SagaQueries(store)


def test_cycle_time_percentiles_of_finished_sagas(history):
    stats = {s.saga_type: s for s in history.cycle_times()}
    overall = stats["*"]
    # finished: 7, 14, 21, 28 (completed), 4 (failed), 10 (compensated); running excluded
    assert overall.count == 6
    assert overall.p50_s == pytest.approx(12.0)
    assert overall.max_s == pytest.approx(28.0)
    assert overall.p99_s == pytest.approx(28 - 0.05 * 7, abs=0.01)
    assert stats["order-fulfillment"].count == 6
    completed = history.cycle_times(SagaFilter(status="completed"))[0]
    assert (completed.count, completed.p50_s) == (4, pytest.approx(17.5))


def test_a_service_clock_behind_does_not_stretch_cycle_times(store, now):
    """Inventory's clock runs 30 s behind: its message (the third) has the smallest event
    time, but the saga still runs from its first message's event time to its last one's."""
    start = now - timedelta(hours=1)
    seed(store, [
        order_saga("o-true", "completed", start=start),
        order_saga("o-skew", "completed", start=start, inventory_skew_s=-30),
    ])
    queries = SagaQueries(store)
    by_id = {s.saga_id: s for s in queries.sagas()}
    assert by_id["o-skew"].duration_s == pytest.approx(by_id["o-true"].duration_s) == 7.0
    assert by_id["o-skew"].started == by_id["o-true"].started
    overall = {s.saga_type: s for s in queries.cycle_times()}["*"]
    assert overall.max_s == pytest.approx(7.0)


def test_cycle_times_over_time_buckets_by_finishing_time(history, now):
    points = history.cycle_times_over_time(bucket_s=3600)
    assert sum(p.count for p in points) == 6
    assert all(p.bucket is not None and p.bucket.minute == 0 for p in points)
    with pytest.raises(QueryError, match="bucket_s"):
        history.cycle_times_over_time(bucket_s=0)


def test_throughput_counts_messages_and_sagas(history):
    points = history.throughput(bucket_s=86400 * 365)
    assert sum(p.messages for p in points) == 4 * 8 + 5 + 11 + 4
    assert sum(p.sagas_started for p in points) == 7
    assert sum(p.sagas_finished for p in points) == 6


def test_transitions_between_steps(history):
    trans = {(t.from_step, t.to_step): t for t in history.transitions()}
    payment_to_shipping = trans[("payment", "shipping")]
    # completed orders: PaymentReceived -> ShipOrder after i s (i = 1..4); compensated: 1 s
    assert payment_to_shipping.count == 5
    assert payment_to_shipping.p50_s == pytest.approx(2.0)
    assert payment_to_shipping.max_s == pytest.approx(4.0)
    assert trans[("place-order", "reserve-stock")].count == 7


def test_failures_by_step_service_and_error(history):
    rows = {(f.step, f.service, f.error, f.reason): f for f in history.failures()}
    assert set(rows) == {
        ("payment", "payment", "PaymentFailed", "card declined"),
        ("shipping", "shipping", "ShippingFailed", "address unknown"),
    }
    declined = rows[("payment", "payment", "PaymentFailed", "card declined")]
    assert (declined.count, declined.sagas, declined.example_saga_id) == (1, 1, "o-failed")
    assert declined.status == "failed"


def test_an_undo_command_is_a_compensation_not_a_failure(history):
    # o-comp's RefundPayment carries ce_sagastatus=compensating: it is not a failure cause.
    errors = {f.error for f in history.failures()}
    assert "RefundPayment" not in errors and "ReleaseStock" not in errors
    assert sum(f.sagas for f in history.failures()) == len(
        {f.example_saga_id for f in history.failures()}
    )


def test_compensation_pairs_each_done_step_with_its_undo(history):
    pairs = {(p.saga_id, p.step): p for p in history.compensations()}
    assert set(pairs) == {("o-comp", "payment"), ("o-comp", "reserve-stock")}
    assert pairs[("o-comp", "payment")].undo_types == ("PaymentRefunded", "RefundPayment")
    assert pairs[("o-comp", "payment")].completion_type == "PaymentRefunded"
    assert {p.state for p in pairs.values()} == {"completed"}


def test_missing_failed_and_duplicated_undos_are_flagged(store, now):
    base = now - timedelta(hours=1)
    reference = order_saga("o-ok", "compensated", start=base)

    missing = order_saga("o-missing", "compensating", start=base)  # refund asked, stock never

    failed = order_saga("o-undo-failed", "compensating", start=base)
    failed.event("RefundFailed", "payment", step="refund-payment", compensates="payment",
                 status="failed")

    duplicated = order_saga("o-twice", "compensated", start=base)
    refund = next(r for r in duplicated.rows if r["type"] == "RefundPayment")
    duplicated.command("RefundPayment", "orchestrator", compensates="payment",
                       step="refund-payment")
    duplicated.duplicate(refund["message_id"])  # a redelivery is not a second undo
    seed(store, reference, missing, failed, duplicated)

    pairs = {(p.saga_id, p.step): p.state for p in SagaQueries(store).compensations()}
    assert pairs == {
        ("o-ok", "payment"): "completed",
        ("o-ok", "reserve-stock"): "completed",
        # the refund was asked and never confirmed: pending, not done
        ("o-missing", "payment"): "pending",
        ("o-missing", "reserve-stock"): "missing",
        ("o-undo-failed", "payment"): "failed",
        ("o-undo-failed", "reserve-stock"): "missing",
        ("o-twice", "payment"): "duplicated",
        ("o-twice", "reserve-stock"): "completed",
    }


def test_process_map_is_the_directly_follows_graph(history):
    pm = history.process_map()
    edges = {(e.source, e.target): e for e in pm.edges}
    assert edges[("OrderPlaced", "ReserveStock")].count == 7
    assert edges[("RetrievePayment", "PaymentReceived")].count == 5
    assert edges[("RetrievePayment", "PaymentFailed")].count == 1
    assert edges[("ShipOrder", "OrderShipped")].median_s == pytest.approx(2.5)
    nodes = {n.activity: n for n in pm.nodes}
    assert nodes["OrderPlaced"].starts == 7 and nodes["OrderCompleted"].ends == 4
    assert pm.sagas == 7
    by_step = {(e.source, e.target) for e in history.process_map(by="step").edges}
    assert ("payment", "shipping") in by_step
    with pytest.raises(QueryError, match="by must be"):
        history.process_map(by="colour")


def test_duplicates_do_not_count_twice_in_the_process_map(store, now):
    saga = SagaScript("o-d", start=now - timedelta(minutes=1))
    saga.event("A", "x")
    saga.event("B", "x")
    saga.duplicate()
    seed(store, saga)
    pm = SagaQueries(store).process_map()
    assert [(e.source, e.target, e.count) for e in pm.edges] == [("A", "B", 1)]


def test_variants_with_frequencies(history):
    variants = history.variants(limit=2)
    assert len(variants) == 2
    top = variants[0]
    assert top.count == 4 and top.share == pytest.approx(4 / 7)
    assert top.activities[0] == "OrderPlaced" and top.activities[-1] == "OrderCompleted"
    assert top.median_cycle_s == pytest.approx(17.5)


def test_analytics_respect_filters(history):
    f = SagaFilter(status="failed")
    assert [v.count for v in history.variants(f)] == [1]
    assert history.process_map(SagaFilter(saga_type="nope")).edges == []
    assert history.failures(SagaFilter(service="shipping"))[0].step == "shipping"
