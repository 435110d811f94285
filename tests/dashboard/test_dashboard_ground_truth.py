"""The Failures page's figures against the demo's ground truth.

A short demo run with every fault on (the e2e run's settings: fixed seed, 60 sagas, 60 %
failure scenarios) goes through the real broker, collector and store; the page is then read as
a user sees it and compared with what the demo says it did: each failing saga once, at its
real cause (never at its undo), and each undo completed exactly when its completion arrived.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demo"))

from demo_expect import make_faulty_demo_settings
from page_tables import html_tables, tile_values
from truth_runs import settled_demo_run

from sagascope.demo_services import SagaTruth
from sagascope.queries import SagaFilter, SagaQueries
from sagascope.settings import AlertSettings, Settings

pytestmark = pytest.mark.slow

#: The demo's failure scenarios and the message that really fails each (its cause).
CAUSES = {
    ("order", "insufficient_funds"): "PaymentDeclined",
    ("order", "out_of_stock"): "StockUnavailable",
    ("order-fulfillment", "card_expired"): "PaymentFailed",
    # Fails only when the card update is lost: the payment service then times out.
    ("order-fulfillment", "card_updated"): "PaymentFailed",
    ("order-fulfillment", "goods_unavailable"): "GoodsOutOfStock",
    ("shipment", "cancelled"): "InventoryShort",
    ("trip-booking", "hotel_unavailable"): "HotelUnavailable",
}
_MARKS = ("failed", "compensating", "compensated")


@pytest.fixture(scope="module")
def demo_store(bootstrap_servers: str, chdb_path: str) -> Iterator[tuple[Any, list[SagaTruth]]]:
    demo = make_faulty_demo_settings()
    database = f"dash_truth_{demo.topic_prefix.strip('.').replace('.', '_')}"
    with settled_demo_run(
        bootstrap_servers, chdb_path, demo, database=database, collector_id="truth",
        threshold_s=6.0,
    ) as (store, truths, _queries):
        yield store, truths


def _failing(truth: SagaTruth) -> bool:
    """The saga's delivered messages say it failed or started undoing."""
    return any(m.saga_status in _MARKS or m.compensates for m in truth.messages)


def _undos(truth: SagaTruth) -> Counter[str]:
    """``completed`` / ``pending`` per undo the saga asked for, from its delivered messages."""
    states: Counter[str] = Counter()
    for i, undo in enumerate(truth.messages):
        if not undo.compensates:
            continue
        done = any(m.step == undo.step and m.kind == "event" for m in truth.messages[i + 1:])
        states["completed" if done else "pending"] += 1
    return states


def test_failures_page_matches_the_demo_ground_truth(demo_store: Any, open_page: Any) -> None:
    store, truths = demo_store
    failing = [t for t in truths if _failing(t)]
    expected_causes = Counter(
        (t.plan.saga_type, CAUSES[(t.plan.saga_type, t.plan.scenario)]) for t in failing
    )
    assert len(expected_causes) >= 4, "the run must fail sagas of most flows"
    at = open_page("failures", store, Settings(alerts=AlertSettings(default_threshold_s=6.0)),
                   timeout_s=120, range="all")
    shown = tile_values(at)
    assert shown["Sagas that failed"] == str(len(failing))
    causes = next(f for f in html_tables(at) if "cause" in f.columns)
    got = Counter()
    for row in causes.to_dict("records"):
        got[(row["saga type"], row["cause"])] += int(row["sagas"])
    assert got == expected_causes
    # A full hotel gives no reason; an earlier attempt's error carried along in the trip's
    # payload is not this failure's reason.
    assert not [r for r in causes.to_dict("records")
                if r["cause"] == "HotelUnavailable" and r["reason"]]
    # Undo commands are compensations, never causes.
    assert not {"RefundPayment", "CancelFlight", "ReimbursePayment"} & set(causes["cause"])

    expected_undos: Counter[str] = Counter()
    for truth in failing:
        expected_undos.update(_undos(truth))
    assert expected_undos["completed"] > 0
    assert shown["Undos completed"] == f"{expected_undos['completed']:,}"
    assert shown["Undos pending"] == f"{expected_undos['pending']:,}"
    assert shown["Failed undos"] == "0"


def test_sql_pairing_equals_the_python_pairing_on_the_demo_store(demo_store: Any) -> None:
    """Real demo traffic (every fault on): the one-query pairing and failure causes equal what
    the previous Python pairing (``tests/failures_reference.py``) computes on the same store."""
    import failures_reference

    from sagascope.queries import failures as sql_pairing

    store, _truths = demo_store
    q = SagaQueries.from_settings(store, AlertSettings(default_threshold_s=6.0))._q
    for filters in (SagaFilter(), SagaFilter(saga_type="trip-booking"),
                    SagaFilter(status="compensated")):
        expected_pairs = failures_reference.compensations(q, filters)
        assert sql_pairing.compensations(q, filters) == expected_pairs, filters
        assert sql_pairing.failures(q, filters) == failures_reference.failures(q, filters), filters
    assert {p.state for p in failures_reference.compensations(q, SagaFilter())} >= {"completed"}
