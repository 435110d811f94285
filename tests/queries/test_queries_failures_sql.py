"""Failures and compensation pairing in SQL give exactly what the previous Python pairing gave.

The reference (``tests/failures_reference.py``) is the pairing as it was finished in Python
over every compensating saga's messages; the shipped one is a single ClickHouse query. Both
run here on the same chDB store, seeded with every status and every pairing state, the
awkward cases included: a redelivered undo, an undo asked twice, an undo that fails, an undo
never asked, a reply from a skewed clock, a completion without a causation, a message
without an id, a failing legacy message without kind or step, a stale reason carried along.
"""

from __future__ import annotations

from datetime import timedelta

import failures_reference
import pytest
from seeding import order_saga, seed, seed_scenarios

from sagascope.queries import SagaFilter, SagaQueries
from sagascope.queries import failures as sql_pairing


@pytest.fixture
def varied(store, now):
    seed_scenarios(store, now)
    base = now - timedelta(hours=1)
    sagas = [order_saga(f"o-{i}", "compensated", start=base + timedelta(minutes=i),
                        inventory_skew_s=-30 if i % 2 else 0) for i in range(4)]
    sagas += [order_saga(f"f-{i}", "failed", start=base + timedelta(minutes=i)) for i in range(3)]

    missing = order_saga("o-missing", "compensating", start=base)
    failed = order_saga("o-undo-failed", "compensating", start=base)
    failed.event("RefundFailed", "payment", step="refund-payment", compensates="payment",
                 status="failed")
    twice = order_saga("o-twice", "compensated", start=base)
    refund = next(r for r in twice.rows if r["type"] == "RefundPayment")
    twice.command("RefundPayment", "orchestrator", compensates="payment", step="refund-payment")
    twice.duplicate(refund["message_id"])
    # Its completion names no cause; it is still the undo's completion, by its step.
    uncaused = order_saga("o-uncaused", "compensating", start=base)
    uncaused.event("PaymentRefunded", "payment", step="refund-payment", caused_by="")
    # A message without an id gives no reason, and pairs as an undo of its own.
    anonymous = order_saga("o-anon", "compensating", start=base)
    anonymous.command("ReleaseStock", "orchestrator", compensates="reserve-stock",
                      step="release-stock")
    anonymous.rows[-1]["message_id"] = ""
    # A legacy system's failure: no kind, no step; the reason is in the payload.
    legacy = order_saga("o-legacy", "running", start=base)
    legacy.send("GoodsOutOfStock", "legacy-wms", kind="", payload={"reason": "bin empty"})
    legacy.command("RefundPayment", "orchestrator", compensates="payment", status="compensating",
                   step="refund-payment")
    # An earlier attempt's error carried along in a later command's payload is stale.
    stale = order_saga("o-stale", "running", start=base)
    stale.command("BookHotel", "agency", step="book-hotel", payload={"error": "channel down"})
    stale.event("HotelUnavailable", "hotel", step="book-hotel",
                payload={"error": "channel down"})
    stale.command("CancelFlight", "agency", compensates="book-flight", status="compensating",
                  step="cancel-flight")
    seed(store, *sagas, missing, failed, twice, uncaused, anonymous, legacy, stale)
    return SagaQueries(store, default_threshold_s=300.0)


FILTERS = [
    SagaFilter(),
    SagaFilter(status="compensating"),
    SagaFilter(saga_type="order-fulfillment"),
    SagaFilter(saga_id_prefix="o-"),
]


@pytest.mark.parametrize("filters", FILTERS, ids=["all", "compensating", "type", "prefix"])
def test_sql_failures_and_pairing_equal_the_python_pairing(varied: SagaQueries,
                                                           filters: SagaFilter) -> None:
    q = varied._q
    expected_pairs = failures_reference.compensations(q, filters)
    assert sql_pairing.compensations(q, filters) == expected_pairs
    assert sql_pairing.failures(q, filters) == failures_reference.failures(q, filters)


def test_the_seeded_store_covers_every_pairing_state(varied: SagaQueries) -> None:
    # Otherwise the comparison above could pass on a store that exercises little.
    states = {p.state for p in varied.compensations()}
    assert states == {"completed", "pending", "missing", "failed", "duplicated"}
    failures = varied.failures()
    assert {f.status for f in failures} >= {"failed", "compensated", "compensating"}
    assert "bin empty" in {f.reason for f in failures}
    for saga_id in ("o-legacy", "o-stale", "f-0"):
        status = next(s.status for s in varied.sagas() if s.saga_id == saga_id)
        expected = failures_reference.failure_of(varied._q, saga_id, status)
        assert sql_pairing.failure_of(varied._q, saga_id, status) == expected


@pytest.mark.parametrize("limit", [1, 3, 500])
def test_the_summary_counts_every_pair_and_lists_the_first_problems_first(
        varied: SagaQueries, limit: int) -> None:
    from collections import Counter

    from sagascope.queries import PAIR_STATES, QueryError

    pairs = varied.compensations()
    summary = varied.compensation_summary(limit=limit)
    assert summary.counts == dict(Counter(p.state for p in pairs))
    assert summary.total == len(pairs)
    rank = {state: i for i, state in enumerate(PAIR_STATES)}
    expected = sorted(pairs, key=lambda p: (rank[p.state], -p.done_at.timestamp(), p.saga_id,
                                            p.step))[:limit]
    assert summary.pairs == expected
    with pytest.raises(QueryError, match="limit"):
        varied.compensation_summary(limit=0)
