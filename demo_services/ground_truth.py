"""What the demo started and how each saga must end: the reference the store is checked against.

The expected messages of a saga follow from its plan (flow and scenario, chosen by the traffic
generator) and from the deterministic fault decisions of the services it passes through: a
message a service drops ends the saga there (it stalls) unless a service times out waiting for
it (the payment service fails a payment whose card update never came) or the same handler run
sends the next message anyway (shipping's OrderShipped and its NotifyCustomer), a booking
attempt that fails is retried. The services never read this module; it is the independent specification.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sagascope.demo_services import _topics as t
from sagascope.demo_services._faults import ServiceFaultConfig

#: Booking attempts before the travel agency gives up retrying a transient failure.
MAX_BOOKING_ATTEMPTS = 4
#: Services that send without any trace headers; their messages are never dropped.
LEGACY_SERVICES = frozenset({"legacy-wms"})

SCENARIOS: dict[str, tuple[str, ...]] = {
    t.ORDER: ("ok", "insufficient_funds", "out_of_stock"),
    t.ORDER_FULFILLMENT: ("ok", "card_updated", "card_expired", "goods_unavailable"),
    t.SHIPMENT: ("ok", "backordered", "cancelled"),
    t.TRIP_BOOKING: ("ok", "hotel_unavailable"),
}


@dataclass(frozen=True)
class ExpectedMessage:
    type: str
    source: str
    kind: str = "event"
    step: str = ""
    saga_status: str = ""
    compensates: str = ""
    #: Sent by the same handler run as the message before it: their order is not defined.
    with_previous: bool = False


@dataclass(frozen=True)
class SagaPlan:
    """One saga the generator starts: its flow, scenario and business data."""

    seq: int
    saga_id: str
    saga_type: str
    scenario: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SagaTruth:
    plan: SagaPlan
    #: Every message that reaches Kafka, in causal order (duplicates once).
    messages: tuple[ExpectedMessage, ...]
    #: completed | failed | compensated | stalled
    status: str
    #: For a stalled saga: the message that was lost.
    lost: ExpectedMessage | None = None

    @property
    def saga_id(self) -> str:
        return self.plan.saga_id

    @property
    def types(self) -> list[str]:
        return [m.type for m in self.messages]

    def concurrent_groups(self) -> list[range]:
        """Index ranges of messages sent together, whose relative order is not defined."""
        groups: list[range] = []
        for i, message in enumerate(self.messages):
            if message.with_previous and groups:
                groups[-1] = range(groups[-1].start, i + 1)
            else:
                groups.append(range(i, i + 1))
        return groups


Faults = Callable[[str], ServiceFaultConfig]
E = ExpectedMessage


def _command(name: str, source: str, saga_status: str = "", compensates: str = "",
             *, with_previous: bool = False) -> E:
    """A command: the step it asks for is named after it."""
    return E(name, source, "command", name, saga_status, compensates, with_previous)


def _refunded(source: str, compensates: str) -> list[E]:
    """``source`` has the payment of step ``compensates`` refunded: the saga compensates."""
    return [_command("RefundPayment", source, "compensating", compensates),
            E("PaymentRefunded", "payment", step="RefundPayment")]


def _order(plan: SagaPlan, faults: Faults) -> list[E]:
    o = "order-orchestrator"
    seq = [_command("PlaceOrder", "storefront"),
           _command("ConfirmPayment", o)]
    if plan.scenario == "insufficient_funds":
        return [*seq, E("PaymentDeclined", "payment", step="ConfirmPayment"),
                E("OrderCancelled", o, step="CancelOrder", saga_status="failed")]
    seq += [E("PaymentConfirmed", "payment", step="ConfirmPayment"),
            _command("CheckStock", o)]
    if plan.scenario == "out_of_stock":
        return [*seq, E("StockUnavailable", "inventory", step="CheckStock"),
                *_refunded(o, "ConfirmPayment"),
                E("OrderCancelled", o, step="CancelOrder", saga_status="compensated")]
    return [*seq, E("StockAvailable", "inventory", step="CheckStock"),
            _command("DeductStock", o),
            E("StockDeducted", "inventory", step="DeductStock"),
            E("OrderConfirmed", o, step="ConfirmOrder", saga_status="completed")]


def _fulfillment(plan: SagaPlan, faults: Faults) -> list[E]:
    o = "order-service"
    seq = [E("OrderPlaced", "checkout", step="PlaceOrder"),
           _command("RetrievePayment", o)]
    if plan.scenario in ("card_updated", "card_expired"):
        seq.append(E("CardUpdateRequested", "payment", step="RetrievePayment"))
        if plan.scenario == "card_expired":
            return [*seq, E("PaymentFailed", "payment", step="RetrievePayment",
                            saga_status="failed")]
        seq.append(E("CardUpdated", "customer", step="UpdateCard"))
    seq += [E("PaymentRetrieved", "payment", step="RetrievePayment"),
            _command("FetchGoods", o)]
    if plan.scenario == "goods_unavailable":
        return [*seq, E("GoodsOutOfStock", "legacy-wms", kind=""),
                *_refunded(o, "RetrievePayment"),
                E("OrderCancelled", o, step="CancelOrder", saga_status="compensated")]
    return [*seq, E("GoodsPicked", "legacy-wms", kind=""),
            _command("ShipGoods", o),
            E("GoodsShipped", "shipping", step="ShipGoods"),
            E("CustomerNotified", "notification", step="NotifyCustomer",
              saga_status="completed")]


def _shipment(plan: SagaPlan, faults: Faults) -> list[E]:
    s = "shipping"
    seq = [_command("ShipOrder", "shop"),
           _command("ChargePayment", s),
           E("PaymentCharged", "payment", step="ChargePayment"),
           _command("ReserveInventory", s)]
    notify = [_command("NotifyCustomer", s, with_previous=True)]
    if plan.scenario == "ok":
        return [*seq, E("InventoryReserved", "inventory", step="ReserveInventory"),
                E("OrderShipped", s, step="Ship"), *notify,
                E("CustomerNotified", "notification", step="NotifyCustomer",
                  saga_status="completed")]
    seq.append(E("InventoryShort", "inventory", step="ReserveInventory"))
    if plan.scenario == "backordered":
        return [*seq, E("OrderBackOrdered", s, step="BackOrder"), *notify,
                E("CustomerNotified", "notification", step="NotifyCustomer",
                  saga_status="completed")]
    return [*seq, *_refunded(s, "ChargePayment"),
            E("OrderCancelled", s, step="CancelOrder"), *notify,
            E("CustomerNotified", "notification", step="NotifyCustomer",
              saga_status="compensated")]


def _booking(step: str, failed: str, service: str, plan: SagaPlan, faults: Faults) -> list[E]:
    out: list[E] = []
    for attempt in range(1, MAX_BOOKING_ATTEMPTS + 1):
        out.append(_command(step, "travel-agency"))
        last = attempt == MAX_BOOKING_ATTEMPTS
        if not last and faults(service).fails(plan.saga_id, step, attempt):
            out.append(E(failed, service, step=step))
            continue
        return out
    return out


def _trip(plan: SagaPlan, faults: Faults) -> list[E]:
    a = "travel-agency"
    seq = [_command("BookTrip", "travel-portal"),
           _command("ChargePayment", a),
           E("PaymentCharged", "payment", step="ChargePayment")]
    seq += _booking("BookFlight", "FlightBookingFailed", "airline", plan, faults)
    seq.append(E("FlightBooked", "airline", step="BookFlight"))
    seq += _booking("BookHotel", "HotelBookingFailed", "hotel", plan, faults)
    if plan.scenario == "hotel_unavailable":
        return [*seq, E("HotelUnavailable", "hotel", step="BookHotel"),
                _command("CancelFlight", a, "compensating", "BookFlight"),
                E("FlightCancelled", "airline", step="CancelFlight"),
                _command("ReimbursePayment", a, compensates="ChargePayment"),
                E("PaymentReimbursed", "payment", step="ReimbursePayment"),
                E("TripCancelled", a, step="CancelTrip", saga_status="compensated")]
    return [*seq, E("HotelBooked", "hotel", step="BookHotel"),
            _command("NotifyCustomer", a),
            E("CustomerNotified", "notification", step="NotifyCustomer",
              saga_status="completed")]


#: What the payment service sends when the customer's new card does not come within
#: ``demo.card_update_wait_s``: its request or the customer's answer was lost.
_CARD_NOT_UPDATED = E("PaymentFailed", "payment", step="RetrievePayment", saga_status="failed")


def _after_loss(plan: SagaPlan, lost: ExpectedMessage) -> list[E] | None:
    """What the services send when ``lost`` never arrives: None when nobody waits for it.

    Only the payment service waits with a deadline: it asked for a new card and fails the
    payment when none arrives in time, whether its request or the answer was lost.
    """
    if plan.saga_type == t.ORDER_FULFILLMENT and lost.type in ("CardUpdateRequested",
                                                               "CardUpdated"):
        return [_CARD_NOT_UPDATED]
    return None


_FLOWS: dict[str, Callable[[SagaPlan, Faults], list[E]]] = {
    t.ORDER: _order,
    t.ORDER_FULFILLMENT: _fulfillment,
    t.SHIPMENT: _shipment,
    t.TRIP_BOOKING: _trip,
}


def expected_truth(plan: SagaPlan, faults: Faults) -> SagaTruth:
    """The messages and final status of ``plan`` under the services' fault decisions."""
    full = _FLOWS[plan.saga_type](plan, faults)
    sent: Counter[tuple[str, str]] = Counter()
    i = 0
    while i < len(full):
        message = full[i]
        sent[(message.source, message.type)] += 1
        if message.source not in LEGACY_SERVICES and faults(message.source).drops(
                plan.saga_id, message.type, sent[(message.source, message.type)]):
            if i + 1 < len(full) and full[i + 1].with_previous:
                # Sent by the same handler run as the next message, which goes out anyway;
                # nobody waits for it (shipping's OrderShipped beside its NotifyCustomer).
                del full[i]
                continue
            instead = _after_loss(plan, message)
            if instead is None:
                return SagaTruth(plan, tuple(full[:i]), "stalled", lost=message)
            # The lost message never reaches Kafka; what the waiting service sends then can
            # itself be lost, so it is checked like any other message.
            full[i:] = instead
            continue
        i += 1
    status = next((m.saga_status for m in reversed(full) if m.saga_status), "")
    return SagaTruth(plan, tuple(full), status)


class GroundTruth:
    """The sagas a demo run started, thread-safe; dumps to JSON lines for later checks.

    Keeps the latest ``capacity`` sagas (a demo may run for days); ``started`` counts all.
    """

    def __init__(self, faults: Faults, capacity: int = 100_000) -> None:
        self._faults = faults
        self._lock = threading.Lock()
        self._sagas: dict[str, SagaTruth] = {}
        self.capacity = capacity
        self.started = 0
        self.outcomes: Counter[str] = Counter()

    def record(self, plan: SagaPlan) -> SagaTruth:
        truth = expected_truth(plan, self._faults)
        with self._lock:
            self._sagas[plan.saga_id] = truth
            self.started += 1
            self.outcomes[truth.status] += 1
            if len(self._sagas) > self.capacity:
                del self._sagas[next(iter(self._sagas))]
        return truth

    def sagas(self) -> list[SagaTruth]:
        with self._lock:
            return list(self._sagas.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._sagas)

    def dump(self, path: str | Path) -> None:
        """Write one JSON object per saga (plan, expected messages, status, lost message)."""
        with Path(path).open("w", encoding="utf-8") as fh:
            for truth in self.sagas():
                fh.write(json.dumps(asdict(truth), default=dict) + "\n")
