"""The flow of one saga: lookup by any key, causal order whatever the clocks, duplicates once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from seeding import SagaScript, message_row, order_saga, seed

from sagascope.queries import NotFound, QueryError, SagaQueries
from sagascope.settings import StatusRule

ORDER_TYPES = [
    "OrderPlaced", "ReserveStock", "StockReserved", "RetrievePayment", "PaymentReceived",
    "ShipOrder", "OrderShipped", "OrderCompleted",
]


def test_flow_by_saga_id_lists_messages_in_order_with_status(store, now):
    seed(store, order_saga("o-1", "completed", start=now - timedelta(minutes=5)))
    flow = SagaQueries(store).flow("o-1")
    assert flow.matched_by == "saga_id"
    assert [m.type for m in flow.messages] == ORDER_TYPES
    assert (flow.status, flow.saga_type) == ("completed", "order-fulfillment")
    assert flow.duration_s == pytest.approx(7.0)


def test_cause_comes_first_when_a_service_clock_runs_30s_behind(store, now):
    saga = order_saga("o-skew", "completed", start=now - timedelta(minutes=5),
                      inventory_skew_s=-30)
    seed(store, saga)
    flow = SagaQueries(store).flow("o-skew")
    # StockReserved's event time is 29 s *before* ReserveStock's, yet it follows its cause.
    assert [m.type for m in flow.messages] == ORDER_TYPES
    by_type = {m.type: m for m in flow.messages}
    assert by_type["StockReserved"].event_time < by_type["ReserveStock"].event_time
    assert by_type["StockReserved"].skew_s == pytest.approx(29.0)
    assert by_type["ReserveStock"].skew_s == 0.0


def test_causal_order_holds_when_consequences_arrive_first_on_other_topics(store, now):
    saga = SagaScript("o-ooo", start=now - timedelta(minutes=5))
    placed = saga.event("OrderPlaced", "orders", topic="orders")
    # The reply lands on another topic and is stored *before* the command that caused it;
    # the payment service's clock is also behind.
    cmd = saga.command("RetrievePayment", "orchestrator", topic="commands", arrival_delay_s=20)
    saga.event("PaymentReceived", "payment", topic="payments", skew_s=-10)
    saga.event("OrderCompleted", "orchestrator", status="completed", topic="orders")
    # Insert in the worst order: consequences first, in separate batches.
    for row in reversed(saga.rows):
        store.insert("messages", [row])
    flow = SagaQueries(store).flow("o-ooo")
    assert [m.type for m in flow.messages] == [
        "OrderPlaced", "RetrievePayment", "PaymentReceived", "OrderCompleted"
    ]
    assert [m.depth for m in flow.messages] == [0, 1, 2, 3]
    assert flow.messages[1].message_id == cmd and flow.messages[1].causation_id == placed
    assert flow.status == "completed"


def test_independent_branches_interleave_by_event_time(store, now):
    saga = SagaScript("o-fan", start=now - timedelta(minutes=5))
    root = saga.event("OrderPlaced", "orders")
    saga.command("ReserveStock", "orchestrator", caused_by=root, after_s=3)
    saga.command("RetrievePayment", "orchestrator", caused_by=root, after_s=-2)
    seed(store, saga)
    flow = SagaQueries(store).flow("o-fan")
    assert [m.type for m in flow.messages] == ["OrderPlaced", "RetrievePayment", "ReserveStock"]


def test_duplicates_are_shown_once_and_flagged(store, now):
    saga = order_saga("o-dup", "completed", start=now - timedelta(minutes=5))
    payment = next(r["message_id"] for r in saga.rows if r["type"] == "PaymentReceived")
    saga.duplicate(payment)
    saga.duplicate(payment, after_s=2)
    seed(store, saga)
    flow = SagaQueries(store).flow("o-dup")
    assert [m.type for m in flow.messages] == ORDER_TYPES
    dup = next(m for m in flow.messages if m.message_id == payment)
    assert dup.duplicated and dup.duplicates == 2 and len(dup.copies) == 3
    assert flow.duplicates == 2
    assert sum(not m.duplicated for m in flow.messages) == len(ORDER_TYPES) - 1


def test_one_saga_spanning_several_traces_is_one_flow(store, now):
    saga = SagaScript("o-long", start=now - timedelta(days=8))
    saga.command("RetrievePayment", "orchestrator")
    saga.event("PaymentFailed", "payment", payload={"error": "card expired"})
    first_trace = saga.trace_id
    # Seven days later a card update starts a new trace.
    saga.event("CardUpdated", "customer", after_s=7 * 86400, new_trace=True, caused_by="")
    saga.command("RetrievePayment", "orchestrator")
    saga.event("PaymentReceived", "payment", status="completed")
    seed(store, saga)
    queries = SagaQueries(store)
    by_new_trace = queries.flow(saga.trace_id)
    by_old_trace = queries.flow(first_trace)
    assert by_new_trace.matched_by == by_old_trace.matched_by == "trace_id"
    assert by_new_trace.saga_id == by_old_trace.saga_id == "o-long"
    assert set(by_new_trace.trace_ids) == {first_trace, saga.trace_id}
    assert len(by_new_trace.messages) == 5
    assert by_new_trace.messages[2].cause_missing is False


def test_flow_by_message_id(store, now):
    saga = order_saga("o-msg", "failed", start=now - timedelta(minutes=5))
    seed(store, saga)
    flow = SagaQueries(store).flow(saga.rows[2]["message_id"])
    assert (flow.matched_by, flow.saga_id, flow.status) == ("message_id", "o-msg", "failed")


def test_trace_without_saga_shows_its_messages(store, now):
    trace = "ab" * 16
    store.insert("messages", [
        message_row(saga_id="", saga_type="", type="Ping", source="legacy", trace_id=trace,
                    event_time=now, correlation="traceparent"),
        message_row(saga_id="", saga_type="", type="Pong", source="legacy", trace_id=trace,
                    event_time=now + timedelta(seconds=1), correlation="traceparent"),
    ])
    flow = SagaQueries(store).flow(trace)
    assert (flow.saga_id, flow.status) == ("", "")
    assert [m.type for m in flow.messages] == ["Ping", "Pong"]


def test_unknown_key_raises_not_found(store):
    with pytest.raises(NotFound, match="no saga, message or trace"):
        SagaQueries(store).flow("nope")
    with pytest.raises(QueryError):
        SagaQueries(store).flow("  ")


def test_causation_cycle_does_not_hang(store, now):
    saga = SagaScript("o-cycle", start=now)
    a = saga.event("A", "x")
    saga.event("B", "x")
    saga.rows[0]["causation_id"] = saga.rows[1]["message_id"]
    seed(store, saga)
    flow = SagaQueries(store).flow("o-cycle")
    assert flow.messages[0].message_id == a
    assert len(flow.messages) == 2


def test_flow_status_is_the_saga_state_by_any_key(store, now):
    """The status rides along the flow's messages query: the same as sagas() gives it, with
    status rules, stalls against the watermark, and lookups by message or trace id."""
    legacy = SagaScript("legacy-1", "shipment", start=now - timedelta(hours=2))
    legacy.event("ShipmentRequested", "legacy-erp")
    legacy.event("ShipmentDelivered", "legacy-carrier")
    seed(store, legacy, order_saga("o-stuck", "stalled", start=now - timedelta(hours=1)),
         order_saga("o-run", "running", start=now - timedelta(seconds=20)))
    rules = [StatusRule(type="ShipmentDelivered", status="completed", saga_type="shipment")]
    for q in (SagaQueries(store), SagaQueries(store, status_rules=rules)):
        expected = {s.saga_id: (s.status, s.saga_type) for s in q.sagas()}
        for saga_id in ("legacy-1", "o-stuck", "o-run"):
            flow = q.flow(saga_id)
            assert (flow.status, flow.saga_type) == expected[saga_id]
            by_message = q.flow(flow.messages[-1].message_id)
            by_trace = q.flow(flow.trace_ids[0])
            assert (by_message.matched_by, by_trace.matched_by) == ("message_id", "trace_id")
            assert (by_message.status, by_trace.status) == (flow.status, flow.status)
            assert by_message.messages == flow.messages
    assert SagaQueries(store, status_rules=rules).flow("legacy-1").status == "completed"
    assert SagaQueries(store).flow("legacy-1").status == "stalled"
    assert SagaQueries(store).flow("o-run").status == "running"
