"""The ground truth and the traffic plan: deterministic, and faithful to the fault decisions."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sagascope.demo_services import GroundTruth, SagaPlan, expected_truth, plan_sagas, resolve_faults
from sagascope.demo_services.ground_truth import MAX_BOOKING_ATTEMPTS, SCENARIOS
from sagascope.settings import DemoSettings


def _faults(settings: DemoSettings):
    return lambda service: resolve_faults(settings, service)


def test_same_seed_plans_the_same_sagas_and_another_seed_does_not():
    settings = DemoSettings(seed=3, failure_rate=0.5)
    first = [plan_sagas(settings, "a")(n) for n in range(1, 41)]
    again = [plan_sagas(settings, "a")(n) for n in range(1, 41)]
    other = [plan_sagas(dataclasses.replace(settings, seed=4), "a")(n) for n in range(1, 41)]
    assert first == again
    assert [p.scenario for p in first] != [p.scenario for p in other]


def test_flows_take_turns_and_failure_rate_sets_the_share_of_failure_scenarios():
    plan = plan_sagas(DemoSettings(seed=1, failure_rate=0.3), "x")
    plans = [plan(n) for n in range(1, 2001)]
    assert [p.saga_type for p in plans[:4]] == list(SCENARIOS)
    failing = sum(p.scenario != "ok" for p in plans) / len(plans)
    assert 0.25 < failing < 0.35
    assert {p.scenario for p in plans} == {s for names in SCENARIOS.values() for s in names}


def test_without_faults_each_scenario_ends_in_its_status():
    settings = DemoSettings(drop_rate=0, duplicate_rate=0, error_rate=0)
    statuses = {
        ("order", "ok"): "completed", ("order", "insufficient_funds"): "failed",
        ("order", "out_of_stock"): "compensated",
        ("order-fulfillment", "ok"): "completed", ("order-fulfillment", "card_updated"): "completed",
        ("order-fulfillment", "card_expired"): "failed",
        ("order-fulfillment", "goods_unavailable"): "compensated",
        ("shipment", "ok"): "completed", ("shipment", "backordered"): "completed",
        ("shipment", "cancelled"): "compensated",
        ("trip-booking", "ok"): "completed", ("trip-booking", "hotel_unavailable"): "compensated",
    }
    for (saga_type, scenario), status in statuses.items():
        truth = expected_truth(SagaPlan(1, "s-1", saga_type, scenario), _faults(settings))
        assert truth.status == status, (saga_type, scenario)
        assert truth.messages[-1].saga_status == status


def test_compensations_name_the_step_they_undo():
    settings = DemoSettings(drop_rate=0, error_rate=0)
    truth = expected_truth(SagaPlan(1, "t-1", "trip-booking", "hotel_unavailable"),
                           _faults(settings))
    undo = {m.type: m.compensates for m in truth.messages if m.compensates}
    assert undo == {"CancelFlight": "BookFlight", "ReimbursePayment": "ChargePayment"}
    assert [m.type for m in truth.messages].index("CancelFlight") < [
        m.type for m in truth.messages].index("ReimbursePayment")


def test_a_dropped_message_stalls_the_saga_right_before_it():
    settings = DemoSettings(drop_rate=0, error_rate=0, service_faults=())
    clean = expected_truth(SagaPlan(1, "o-1", "order", "ok"), _faults(settings))
    lossy = DemoSettings(drop_rate=0, error_rate=0, service_faults=(
        _override("inventory", drop_rate=1.0),))
    truth = expected_truth(SagaPlan(1, "o-1", "order", "ok"), _faults(lossy))
    assert truth.status == "stalled"
    assert truth.lost is not None and truth.lost.type == "StockAvailable"
    assert truth.types == clean.types[: clean.types.index("StockAvailable")]


def test_client_services_never_drop_so_every_saga_exists():
    settings = DemoSettings(drop_rate=1.0)
    truth = expected_truth(SagaPlan(1, "o-1", "order", "ok"), _faults(settings))
    assert truth.types == ["PlaceOrder"]
    assert truth.lost is not None and truth.lost.source == "order-orchestrator"


def test_failed_bookings_are_retried_until_the_last_attempt():
    always = DemoSettings(drop_rate=0, error_rate=1.0)
    truth = expected_truth(SagaPlan(1, "t-1", "trip-booking", "ok"), _faults(always))
    assert truth.types.count("BookFlight") == MAX_BOOKING_ATTEMPTS
    assert truth.types.count("FlightBookingFailed") == MAX_BOOKING_ATTEMPTS - 1
    assert truth.status == "completed"


def test_ground_truth_dumps_one_json_object_per_saga(tmp_path):
    settings = DemoSettings()
    truth = GroundTruth(_faults(settings))
    plan = plan_sagas(settings, "r")
    for n in range(1, 5):
        truth.record(plan(n))
    path = tmp_path / "truth.jsonl"
    truth.dump(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["plan"]["saga_id"] for r in rows] == [plan(n).saga_id for n in range(1, 5)]
    assert all(r["status"] and r["messages"] for r in rows)


def _override(service: str, **values: float):
    from sagascope.settings import ServiceFaults

    return ServiceFaults(service=service, **values)


@pytest.mark.parametrize("name", ["drop_rate", "duplicate_rate", "error_rate"])
def test_a_rate_outside_zero_to_one_is_a_config_error_naming_it(name):
    from sagascope.exceptions import ConfigError

    with pytest.raises(ConfigError, match=f"demo.{name}"):
        resolve_faults(DemoSettings(**{name: 1.5}), "payment")


@pytest.mark.parametrize(("values", "named"), [
    ({"rate": 0}, "demo.rate"),
    ({"partitions": 0}, "demo.partitions"),
    ({"run_id": "a-b"}, "demo.run_id"),
    ({"service_faults": (_override("nosuch", drop_rate=0.1),)}, "demo.service_faults"),
])
def test_bad_demo_settings_fail_before_anything_runs(values, named):
    from sagascope.demo_services import DemoRunner
    from sagascope.exceptions import ConfigError

    with pytest.raises(ConfigError, match=named):
        DemoRunner(DemoSettings(**values), "127.0.0.1:9")


def test_ground_truth_keeps_the_latest_sagas_and_counts_them_all():
    settings = DemoSettings()
    truth = GroundTruth(_faults(settings), capacity=5)
    plan = plan_sagas(settings, "r")
    for n in range(1, 13):
        truth.record(plan(n))
    assert [t.saga_id for t in truth.sagas()] == [plan(n).saga_id for n in range(8, 13)]
    assert truth.started == 12 == sum(truth.outcomes.values())


def test_a_lost_card_update_times_out_into_a_failed_payment():
    # The customer's new card never reaches the payment service, which waits only
    # card_update_wait_s and then fails the payment: the saga fails, it does not stall.
    answers_lost = DemoSettings(drop_rate=0, error_rate=0, service_faults=(
        _override("customer", drop_rate=1.0),))
    truth = expected_truth(SagaPlan(1, "f-1", "order-fulfillment", "card_updated"),
                           _faults(answers_lost))
    assert (truth.status, truth.lost) == ("failed", None)
    assert truth.types == ["OrderPlaced", "RetrievePayment", "CardUpdateRequested",
                           "PaymentFailed"]
    assert truth.messages[-1].saga_status == "failed"


def test_a_lost_card_request_times_out_too_and_the_timeout_itself_can_be_lost():
    # The payment service loses everything it sends: first its card-update request (so the
    # customer is never asked), then the PaymentFailed of its timeout, which stalls the saga.
    lossy_payment = DemoSettings(drop_rate=0, error_rate=0, service_faults=(
        _override("payment", drop_rate=1.0),))
    truth = expected_truth(SagaPlan(1, "f-2", "order-fulfillment", "card_updated"),
                           _faults(lossy_payment))
    assert truth.status == "stalled"
    assert truth.lost is not None and truth.lost.type == "PaymentFailed"
    assert truth.types == ["OrderPlaced", "RetrievePayment"]


def test_a_lost_event_sent_beside_the_next_command_does_not_stall_the_saga():
    # Shipping sends OrderShipped and NotifyCustomer from one handler run: losing the event
    # (which nobody waits for) leaves the notification, so the saga still completes.
    clean = expected_truth(SagaPlan(1, "s-0", "shipment", "ok"),
                           _faults(DemoSettings(drop_rate=0, error_rate=0)))
    lossy = DemoSettings(drop_rate=0, error_rate=0, service_faults=(
        _override("shipping", drop_rate=0.5),))
    shipping = resolve_faults(lossy, "shipping")
    sent = [m.type for m in clean.messages if m.source == "shipping"]
    # A saga whose only lost shipping message is OrderShipped (the decisions are seeded).
    saga_id = next(f"s-{n}" for n in range(1, 500)
                   if [shipping.drops(f"s-{n}", t, 1) for t in sent]
                   == [t == "OrderShipped" for t in sent])
    truth = expected_truth(SagaPlan(1, saga_id, "shipment", "ok"), _faults(lossy))
    assert (truth.status, truth.lost) == ("completed", None)
    assert truth.types == [t for t in clean.types if t != "OrderShipped"]
