"""Saga status: explicit markers, status rules, stalls against the watermark, filters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from seeding import SCENARIO_STATUSES, SagaScript, order_saga, seed

from sagascope.queries import QueryError, SagaFilter, SagaQueries, StallRule
from sagascope.settings import StatusRule


def test_every_status_is_derived_from_the_messages(queries, scenarios, now):
    summaries = {s.saga_id: s for s in queries.sagas(limit=50)}
    # silence is measured against now (no collector progress rows: watermark = now())
    assert {status: summaries[saga_id].status for status, saga_id in scenarios.items()} == {
        status: status for status in SCENARIO_STATUSES
    }


def test_status_counts_cover_every_status(queries, scenarios):
    counts = queries.status_counts()
    assert counts == {status: 1 for status in SCENARIO_STATUSES}


def test_status_filter_selects_only_that_status(queries, scenarios):
    failed = queries.sagas(SagaFilter(status="failed"))
    assert [s.saga_id for s in failed] == [scenarios["failed"]]


def test_unknown_status_filter_is_rejected(queries, scenarios):
    with pytest.raises(QueryError, match="status must be one of"):
        queries.sagas(SagaFilter(status="done"))


def test_status_rules_give_an_outcome_to_sagas_without_markers(store, now):
    saga = SagaScript("legacy-1", "shipment", start=now - timedelta(hours=2))
    saga.event("ShipmentRequested", "legacy-erp")
    saga.event("ShipmentDelivered", "legacy-carrier")
    other = SagaScript("legacy-2", "returns", start=now - timedelta(hours=2))
    other.event("ShipmentDelivered", "legacy-carrier")
    seed(store, saga, other)
    rules = [StatusRule(type="ShipmentDelivered", status="completed", saga_type="shipment")]
    with_rules = SagaQueries(store, status_rules=rules)
    without = SagaQueries(store)
    assert {s.saga_id: s.status for s in with_rules.sagas()} == {
        "legacy-1": "completed",
        "legacy-2": "stalled",  # the rule is for saga type "shipment" only
    }
    assert {s.status for s in without.sagas()} == {"stalled"}


def test_bad_status_rule_names_the_setting(store):
    with pytest.raises(QueryError, match=r"status_rules\[0\]\.status"):
        SagaQueries(store, status_rules=[StatusRule(type="X", status="done")])


def test_latest_marker_wins_by_arrival(store, now):
    saga = order_saga("o-late", "compensated", start=now - timedelta(minutes=20))
    seed(store, saga)
    assert SagaQueries(store).sagas()[0].status == "compensated"


def test_stall_is_measured_against_the_collector_watermark(store, now):
    seed(store, order_saga("o-quiet", "running", start=now - timedelta(minutes=30)))
    queries = SagaQueries(store, default_threshold_s=300)
    assert queries.sagas()[0].status == "stalled"
    # A collector that has read only up to the saga's last message: not silent at all.
    last = queries.sagas()[0].last_kafka_time
    store.insert(
        "progress",
        [
            {"group_id": "g", "collector_id": "c1", "topic": "orchestrator.commands",
             "partition": 0, "stored_offset": 10, "end_offset": 10,
             "read_until": last + timedelta(seconds=5), "updated_at": now},
            {"group_id": "g", "collector_id": "c1", "topic": "payment.events",
             "partition": 0, "stored_offset": 3, "end_offset": 9,
             "read_until": last + timedelta(seconds=60), "updated_at": now},
        ],
    )
    assert queries.watermark() == last + timedelta(seconds=5)
    assert queries.sagas()[0].status == "running"
    assert queries.stalled() == []


def test_stall_rules_pick_the_first_matching_threshold(store, now):
    seed(store, order_saga("o-wait", "running", start=now - timedelta(seconds=130)))
    # last message: RetrievePayment at step "payment", ~126 s ago
    strict = SagaQueries(store, stall_rules=[StallRule("order-fulfillment", "payment", 60)])
    wrong_step = SagaQueries(store, stall_rules=[StallRule("order-fulfillment", "shipping", 60)])
    wildcard_after = SagaQueries(
        store, stall_rules=[StallRule("*", "payment", 600), StallRule("*", "*", 60)]
    )
    assert [s.threshold_s for s in strict.stalled()] == [60.0]
    assert wrong_step.stalled() == []  # default 300 s applies
    assert wildcard_after.stalled() == []


def test_stalled_saga_says_what_it_waits_for(store, now):
    history = [
        order_saga(f"o-done-{i}", "completed", start=now - timedelta(hours=3)) for i in range(3)
    ]
    seed(store, history, order_saga("o-stuck", "stalled", start=now - timedelta(hours=1)))
    stalled = SagaQueries(store).stalled()
    assert len(stalled) == 1
    s = stalled[0]
    assert (s.saga_id, s.step, s.last_type) == ("o-stuck", "payment", "RetrievePayment")
    assert s.waiting_for == "PaymentReceived (reply to RetrievePayment)"
    assert s.silent_s > 3000 and s.threshold_s == 300.0


def test_stalled_as_of_replaces_the_watermark(store, now):
    seed(store, order_saga("o-new", "running", start=now - timedelta(seconds=10)))
    queries = SagaQueries(store)
    assert queries.stalled() == []
    assert [s.saga_id for s in queries.stalled(as_of=now + timedelta(hours=1))] == ["o-new"]


def test_filters_by_type_service_step_attribute_and_time(store, now):
    a = order_saga("o-a", "completed", start=now - timedelta(days=2))
    b = order_saga("o-b", "failed", start=now - timedelta(hours=1))
    c = SagaScript("t-c", "travel-booking", start=now - timedelta(hours=1))
    c.event("TripRequested", "travel", payload={"customer": {"tier": "gold"}},
            headers={"tenant": "acme"})
    c.event("TripBooked", "hotel", step="hotel", status="completed")
    seed(store, a, b, c)
    q = SagaQueries(store)

    def ids(**kw):
        return sorted(s.saga_id for s in q.sagas(SagaFilter(**kw)))

    assert ids(saga_type="travel-booking") == ["t-c"]
    assert ids(service="payment") == ["o-a", "o-b"]
    assert ids(service="hotel") == ["t-c"]
    assert ids(step="hotel") == ["t-c"]
    assert ids(attribute="tenant=acme") == ["t-c"]
    assert ids(attribute="customer.tier=gold") == ["t-c"]
    assert ids(attribute=("customer.tier", "silver")) == []
    assert ids(time_from=now - timedelta(hours=3)) == ["o-b", "t-c"]
    assert ids(time_to=now - timedelta(days=1)) == ["o-a"]
    assert q.status_counts(SagaFilter(saga_type="order-fulfillment"))["failed"] == 1


def test_user_input_is_never_sql(store, now):
    seed(store, order_saga("o-1", "completed", start=now - timedelta(hours=1)))
    q = SagaQueries(store)
    evil = "x' OR 1=1 --"
    assert q.sagas(SagaFilter(saga_type=evil, service=evil, attribute=f"{evil}={evil}")) == []
    assert q.status_counts(SagaFilter(step=evil))["completed"] == 0


def test_data_as_of_is_the_watermark_or_the_last_ingest(store, now):
    queries = SagaQueries(store)
    assert queries.data_as_of() is None
    saga = order_saga("o-1", "completed", start=now - timedelta(hours=1))
    seed(store, saga)
    assert queries.data_as_of() == max(r["ingest_time"] for r in saga.rows).replace(
        microsecond=max(r["ingest_time"] for r in saga.rows).microsecond // 1000 * 1000
    )
    store.insert("progress", [
        {"group_id": "g", "collector_id": "c", "topic": "t", "partition": 0, "stored_offset": 1,
         "end_offset": 1, "read_until": now - timedelta(minutes=1), "updated_at": now},
    ])
    assert queries.data_as_of() == queries.watermark()
    assert abs((queries.watermark() - (now - timedelta(minutes=1))).total_seconds()) < 0.002


def test_summaries_give_the_state_of_just_the_sagas_asked_for(queries, scenarios):
    asked = [scenarios["completed"], scenarios["stalled"], "no-such-saga"]
    current = queries.summaries(asked)
    assert set(current) == {scenarios["completed"], scenarios["stalled"]}
    assert current[scenarios["completed"]].status == "completed"
    assert current[scenarios["stalled"]].status == "stalled"
    assert queries.summaries([]) == {}
