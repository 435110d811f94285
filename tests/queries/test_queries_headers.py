"""Headers stored elided (contract headers a column reproduces are bits, not map entries) read
back as received: in a flow and in the attribute filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from seeding import SagaScript, order_saga, seed

from sagascope.queries import SagaFilter, SagaQueries
from sagascope.store.timetext import rfc3339_ms


def _ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _travel(now) -> SagaScript:
    saga = SagaScript("t-1", "travel-booking", start=now - timedelta(hours=1))
    saga.event("TripRequested", "travel", payload={"customer": {"tier": "gold"}},
               headers={"tenant": "acme"})
    saga.command("BookHotel", "travel", step="hotel",
                 headers={"traceparent": f"00-{saga.trace_id}-00f067aa0ba902b7-00"})
    saga.event("TripBooked", "hotel", step="hotel", status="completed",
               headers={"ce_time": "2026-01-01T00:00:00+00:00"})
    return saga


def test_rows_are_stored_elided(store, now):
    saga = _travel(now)
    seed(store, saga)
    rows = store.query(
        "SELECT type, headers, headers_elided FROM messages ORDER BY event_time"
    ).rows
    # Only what no column reproduces is in the map; the rest are bits.
    assert [(t, dict(h)) for t, h, _ in rows] == [
        ("TripRequested", {"tenant": "acme"}),
        ("BookHotel", {"traceparent": f"00-{saga.trace_id}-00f067aa0ba902b7-00"}),
        ("TripBooked", {"ce_time": "2026-01-01T00:00:00+00:00"}),
    ]
    assert all(bits for _, _, bits in rows)


def test_flow_headers_are_the_received_headers(store, now):
    saga = _travel(now)
    seed(store, saga)
    flow = SagaQueries(store).flow("t-1")
    assert [m.type for m in flow.messages] == ["TripRequested", "BookHotel", "TripBooked"]
    first, booking, booked = flow.messages
    assert first.headers == {
        "traceparent": f"00-{saga.trace_id}-{first.span_id}-01",
        "ce_specversion": "1.0",
        "ce_id": first.message_id,
        "ce_source": "travel",
        "ce_type": "TripRequested",
        "ce_time": rfc3339_ms(_ms(first.event_time)),
        "ce_sagaid": "t-1",
        "ce_sagatype": "travel-booking",
        "ce_kind": "event",
        "tenant": "acme",
    }
    assert first.headers["ce_time"] == first.event_time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert booking.headers["traceparent"] == f"00-{saga.trace_id}-00f067aa0ba902b7-00"
    assert booking.headers["ce_causationid"] == first.message_id
    assert (booking.headers["ce_step"], booking.headers["ce_kind"]) == ("hotel", "command")
    assert booked.headers["ce_time"] == "2026-01-01T00:00:00+00:00"
    assert booked.headers["ce_sagastatus"] == "completed"
    assert "ce_compensates" not in booked.headers


def test_flow_headers_of_a_compensation(store, now):
    seed(store, order_saga("o-1", "compensated", start=now - timedelta(minutes=5)))
    flow = SagaQueries(store).flow("o-1")
    refund = next(m for m in flow.messages if m.type == "RefundPayment")
    assert refund.headers["ce_compensates"] == "payment"
    assert refund.headers["ce_step"] == "refund-payment"
    for m in flow.messages:
        assert m.headers["ce_id"] == m.message_id
        assert m.headers["ce_sagaid"] == "o-1"
        assert m.headers.get("ce_causationid", "") == m.causation_id


def test_attribute_filter_finds_elided_and_plain_headers(store, now):
    travel = _travel(now)
    seed(store, travel, order_saga("o-1", "completed", start=now - timedelta(hours=2)))
    q = SagaQueries(store)

    def ids(attribute):
        return sorted(s.saga_id for s in q.sagas(SagaFilter(attribute=attribute)))

    assert ids("ce_step=hotel") == ["t-1"]
    assert ids("ce_step=payment") == ["o-1"]
    assert ids("ce_type=TripBooked") == ["t-1"]
    assert ids("ce_sagatype=order-fulfillment") == ["o-1"]
    assert ids("ce_specversion=1.0") == ["o-1", "t-1"]
    assert ids("ce_sagastatus=completed") == ["o-1", "t-1"]
    first = travel.rows[0]
    assert ids(f"ce_id={first['message_id']}") == ["t-1"]
    assert ids(f"traceparent=00-{first['trace_id']}-{first['span_id']}-01") == ["t-1"]
    assert ids(f"traceparent=00-{first['trace_id']}-00f067aa0ba902b7-00") == ["t-1"]
    assert ids(f"ce_time={rfc3339_ms(_ms(first['event_time']))}") == ["t-1"]
    assert ids("ce_time=2026-01-01T00:00:00+00:00") == ["t-1"]
    assert ids("tenant=acme") == ["t-1"]
    assert ids("ce_step=nowhere") == []
    assert ids("ce_specversion=0.3") == []
    assert ids("tenant=other") == []
    assert ids(("x' OR 1=1 --", "hotel")) == []
