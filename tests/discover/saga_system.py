"""A saga system of its own, with no sagascope instrumentation, and its truth.

Two saga types, each shape from docs' field notes once at least:
- ``order`` (orchestrated): commands and replies on per-service topics; the order id is
  ``orderId`` on the orders topic, ``order_id`` on inventory, ``/order/id`` on shipping, the key
  on payment requests and the ``x-correlation-id`` header on payment replies (keyed by the
  customer: a decoy key); a payment's outcome is ``success: false`` inside one reply type, a
  shipment's is ``status: FAILED``; inventory commands and replies carry a per-request
  ``x-request-id`` (a decoy); event times as epoch ms, RFC 3339 with an offset, epoch s, or
  only the Kafka time.
- ``delivery`` (choreographed): services react to each other's events; a declined charge
  makes the courier service release its courier (an undo with no command); the notification
  topic has no type field and no id but the key; event time in epoch µs on one topic.
Noise: a metrics topic, a CDC stream of the customers table (its ids are the customer ids,
so it joins the decoy, never a saga) and the orders service's outbox relayed by CDC (the
order id in ``aggregateid``: copies of the orders topic that must not join the flows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from kafka import KafkaProducer

from sagascope.embedded import create_topics

ORDER_SCENARIOS = ("ok", "out_of_stock", "card_declined", "address_invalid")
DELIVERY_SCENARIOS = ("ok", "no_courier", "charge_declined")
SAGA_TOPICS = (
    "shop.orders", "inventory.commands", "inventory.replies", "payments.requests",
    "payments.replies", "shipping.requests", "shipping.events",
    "delivery.events", "courier.events", "billing.events", "delivery.notifications",
)
NOISE_TOPICS = ("metrics.hosts", "dbserver.public.customers", "outbox.orders")


@dataclass(frozen=True)
class Message:
    topic: str
    key: str | None
    value: dict[str, object]
    headers: dict[str, str]
    time: datetime
    #: The type the system means (what a flow must show).
    type: str


@dataclass
class SagaTruth:
    saga_id: str
    saga_type: str
    scenario: str
    status: str
    types: list[str] = field(default_factory=list)
    #: Steps undone, each with its undo completed.
    undone: set[str] = field(default_factory=set)


@dataclass
class SagaSystem:
    prefix: str
    messages: list[Message] = field(default_factory=list)
    sagas: dict[str, SagaTruth] = field(default_factory=dict)

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @property
    def topics(self) -> list[str]:
        return [self.topic(t) for t in SAGA_TOPICS + NOISE_TOPICS]


def _rfc3339_offset(moment: datetime) -> str:
    return moment.astimezone(timezone(timedelta(hours=2))).isoformat()


class _Saga:
    """Writes one saga's messages, one step apart in time, and its truth."""

    def __init__(self, system: SagaSystem, truth: SagaTruth, start: datetime) -> None:
        self.system, self.truth, self.at = system, truth, start
        system.sagas[truth.saga_id] = truth
        self.request = 0

    def send(self, topic: str, type_name: str, value: dict[str, object], *,
             key: str | None = None, headers: dict[str, str] | None = None) -> datetime:
        self.at += timedelta(milliseconds=1500)
        self.system.messages.append(Message(
            self.system.topic(topic), key, value, headers or {}, self.at, type_name))
        self.truth.types.append(type_name)
        return self.at


def _order(system: SagaSystem, n: int, scenario: str, start: datetime) -> None:
    order_id, customer = f"ord-{n:04d}", f"cust-{n % 5 + 1}"
    status = {"ok": "completed", "out_of_stock": "failed"}.get(scenario, "compensated")
    s = _Saga(system, SagaTruth(order_id, "order", scenario, status), start)
    ms = lambda: int(s.at.timestamp() * 1000)  # noqa: E731 - the time of the message being sent

    def orders(type_name: str) -> None:
        s.send("shop.orders", type_name, {})
        event = system.messages[-1]
        event.value.update(
            {"type": type_name, "orderId": order_id, "customerId": customer, "ts": ms()})
        # the same event, relayed from the orders service's outbox table (noise, no saga)
        system.messages.append(Message(
            system.topic("outbox.orders"), order_id,
            {"id": f"{order_id}-{len(s.truth.types)}", "aggregatetype": "Order",
             "aggregateid": order_id, "type": type_name, "payload": json.dumps(event.value)},
            {}, event.time + timedelta(milliseconds=200), ""))

    def inventory(command: str, reply: str) -> None:
        s.request += 1
        request = f"req-{order_id}-{s.request}"
        when = s.send("inventory.commands", command,
                      {"command": command, "order_id": order_id, "sku": f"sku-{n % 3}", "qty": 2},
                      headers={"x-request-id": request})
        system.messages[-1].value["sentAt"] = _rfc3339_offset(when)
        when = s.send("inventory.replies", reply, {"eventType": reply, "order_id": order_id},
                      headers={"x-request-id": request})
        system.messages[-1].value["sentAt"] = _rfc3339_offset(when)

    def payment(command: str, reply: str, success: bool) -> None:
        s.send("payments.requests", command, {"amount": 20.5 + n, "currency": "EUR",
                                              "customer": customer},
               key=order_id, headers={"__TypeId__": command})
        value: dict[str, object] = {"type": reply, "success": success}
        if not success:
            value["failureReason"] = "CardDeclined"
        when = s.send("payments.replies", reply, value, key=customer,
                      headers={"x-correlation-id": order_id})
        value["at"] = int(when.timestamp())

    orders("OrderPlaced")
    if scenario == "out_of_stock":
        inventory("ReserveStock", "OutOfStock")
        orders("OrderRejected")
        return
    inventory("ReserveStock", "StockReserved")
    if scenario == "card_declined":
        payment("ProcessPayment", "PaymentReply", False)
        inventory("ReleaseStock", "StockReleased")
        s.truth.undone.add("ReserveStock")
        orders("OrderRejected")
        return
    payment("ProcessPayment", "PaymentReply", True)
    s.send("shipping.requests", "ShipOrder", {"command": "ShipOrder", "order": {"id": order_id}})
    shipped = scenario == "ok"
    s.send("shipping.events", "ShipmentReply", {
        "type": "ShipmentReply", "order": {"id": order_id},
        "status": "SHIPPED" if shipped else "FAILED",
        **({} if shipped else {"reason": "address invalid"}),
    })
    if shipped:
        orders("OrderApproved")
        return
    payment("RefundPayment", "PaymentRefunded", True)
    inventory("ReleaseStock", "StockReleased")
    s.truth.undone |= {"ProcessPayment", "ReserveStock"}
    orders("OrderRejected")


def _delivery(system: SagaSystem, n: int, scenario: str, start: datetime) -> None:
    delivery_id = f"dlv-{n:04d}"
    status = {"ok": "completed", "no_courier": "failed"}.get(scenario, "compensated")
    s = _Saga(system, SagaTruth(delivery_id, "delivery", scenario, status), start)

    def delivery(type_name: str) -> None:
        when = s.send("delivery.events", type_name, {
            "event_type": type_name, "delivery": {"id": delivery_id}})
        system.messages[-1].value["occurredAt"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def courier(type_name: str) -> None:
        when = s.send("courier.events", type_name, {"kind": type_name, "deliveryId": delivery_id,
                                                    "courier": f"c-{n % 4}"})
        system.messages[-1].value["ts_us"] = int(when.timestamp() * 1_000_000)

    def billing(type_name: str) -> None:
        when = s.send("billing.events", type_name, {"type": type_name, "amount": 4.5 + n},
                      headers={"x-correlation-id": delivery_id})
        system.messages[-1].value["ts"] = int(when.timestamp() * 1000)

    def notify(text: str) -> None:
        # no type field: the topic is the type
        s.send("delivery.notifications", system.topic("delivery.notifications"),
               {"channel": "sms", "text": text}, key=delivery_id)

    delivery("DeliveryRequested")
    if scenario == "no_courier":
        courier("CourierUnavailable")
        delivery("DeliveryAbandoned")
        notify("Sorry, no courier today")
        return
    courier("CourierAssigned")
    if scenario == "charge_declined":
        billing("ChargeDeclined")
        courier("CourierReleased")
        s.truth.undone.add("CourierAssigned")
        delivery("DeliveryAbandoned")
        notify("Your card was declined")
        return
    billing("DeliveryCharged")
    delivery("DeliveryCompleted")
    notify("Delivered")


def _noise(system: SagaSystem, start: datetime) -> None:
    for i in range(30):
        at = start + timedelta(seconds=7 * i)
        system.messages.append(Message(
            system.topic("metrics.hosts"), f"web-{i % 3}",
            {"metric": "cpu", "host": f"web-{i % 3}", "value": round(0.1 + i / 100, 2),
             "ts": int(at.timestamp() * 1000)}, {}, at, ""))
    for i in range(16):
        at = start + timedelta(seconds=11 * i)
        customer = f"cust-{i % 5 + 1}"
        system.messages.append(Message(
            system.topic("dbserver.public.customers"), json.dumps({"id": customer}),
            {"before": None, "after": {"id": customer, "name": f"name {i}"}, "op": "u",
             "ts_ms": int(at.timestamp() * 1000)}, {}, at, ""))


def build_system(prefix: str, per_scenario: int = 6) -> SagaSystem:
    """The system's messages (time order) and truth; the sagas overlap in time."""
    system = SagaSystem(prefix)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    n = 0
    for round_ in range(per_scenario):
        for scenario in ORDER_SCENARIOS:
            n += 1
            _order(system, n, scenario, start + timedelta(seconds=9 * n + round_))
        for scenario in DELIVERY_SCENARIOS:
            n += 1
            _delivery(system, n, scenario, start + timedelta(seconds=9 * n + 4))
    _noise(system, start)
    system.messages.sort(key=lambda m: m.time)
    return system


def produce(system: SagaSystem, bootstrap_servers: str, partitions: int = 2) -> None:
    """Create the topics and send every message with its time as the Kafka timestamp."""
    create_topics(bootstrap_servers, {t: partitions for t in system.topics})
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=5, acks=1)
    try:
        futures = [
            producer.send(
                m.topic, key=m.key.encode() if m.key is not None else None,
                value=json.dumps(m.value).encode(),
                headers=[(k, v.encode()) for k, v in m.headers.items()],
                timestamp_ms=int(m.time.timestamp() * 1000),
            )
            for m in system.messages
        ]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(timeout=10)
