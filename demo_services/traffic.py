"""The traffic generator: the clients that start sagas of the four saga types at a set rate.

Each saga's flow and scenario come from a seeded RNG (the same seed gives the same sagas),
and the plan is recorded in the ground truth before its first message is sent.
"""

from __future__ import annotations

import itertools
import logging
import random
import secrets
import threading
from collections.abc import Callable
from typing import Any

from sagascope.demo_services import _topics as t
from sagascope.demo_services.customer import LAPSED_PREFIX
from sagascope.demo_services.ground_truth import SCENARIOS, GroundTruth, SagaPlan
from sagascope.demo_services.hotel import FULL_HOTELS
from sagascope.demo_services.inventory import OUT_OF_STOCK_SKUS
from sagascope.demo_services.payment import CREDIT_LIMIT, REJECTED_CARDS
from sagascope.instrumentation import InstrumentedProducer, start_saga
from sagascope.settings import DemoSettings

log = logging.getLogger(__name__)

_OUT_OF_STOCK = sorted(OUT_OF_STOCK_SKUS)[0]
_REJECTED_CARD = sorted(REJECTED_CARDS)[0]
_FULL_HOTEL = sorted(FULL_HOTELS)[0]
_GOOD_CARD = "4111-1111-1111-1111"

#: saga type -> (client service, topic, first message type, kind, saga id prefix)
FIRST_MESSAGE: dict[str, tuple[str, str, str, str, str]] = {
    t.ORDER: ("storefront", t.ORDERS_COMMANDS, "PlaceOrder", "command", "ord"),
    t.ORDER_FULFILLMENT: ("checkout", t.CHECKOUT_EVENTS, "OrderPlaced", "event", "ful"),
    t.SHIPMENT: ("shop", t.SHIPPING_COMMANDS, "ShipOrder", "command", "shp"),
    t.TRIP_BOOKING: ("travel-portal", t.TRAVEL_COMMANDS, "BookTrip", "command", "trp"),
}
CLIENTS: tuple[str, ...] = tuple(client for client, *_ in FIRST_MESSAGE.values())


def plan_sagas(settings: DemoSettings, run_id: str) -> Callable[[int], SagaPlan]:
    """The plan of saga number ``seq`` (from 1): saga types in turn, scenarios drawn from the seed."""

    def plan(seq: int) -> SagaPlan:
        rng = random.Random(f"{settings.seed}:{seq}")
        saga_type = t.SAGA_TYPES[(seq - 1) % len(t.SAGA_TYPES)]
        failures = SCENARIOS[saga_type][1:]
        scenario = rng.choice(failures) if rng.random() < settings.failure_rate else "ok"
        saga_id = f"{FIRST_MESSAGE[saga_type][4]}-{run_id}-{seq:06d}"
        return SagaPlan(seq, saga_id, saga_type, scenario, _data(saga_type, scenario, saga_id, rng))

    return plan


def _data(saga_type: str, scenario: str, saga_id: str, rng: random.Random) -> dict[str, Any]:
    sku = _OUT_OF_STOCK if scenario in ("out_of_stock", "goods_unavailable", "backordered",
                                        "cancelled") else f"SKU-{rng.randint(1, 999):04d}"
    customer = f"C-{rng.randint(1, 9999):04d}"
    if saga_type == t.TRIP_BOOKING:
        return {
            "trip_id": saga_id, "customer_id": customer,
            "flight": f"LH{rng.randint(100, 999)}", "amount": round(rng.uniform(300, 2500), 2),
            "hotel": _FULL_HOTEL if scenario == "hotel_unavailable" else f"HTL-{rng.randint(1, 99):02d}",
        }
    data: dict[str, Any] = {
        "order_id": saga_id, "customer_id": customer, "sku": sku,
        "quantity": rng.randint(1, 5), "amount": round(rng.uniform(10, 900), 2),
    }
    if scenario == "insufficient_funds":
        data["amount"] = CREDIT_LIMIT + round(rng.uniform(1, 5000), 2)
    if saga_type == t.ORDER_FULFILLMENT:
        rejected = scenario in ("card_updated", "card_expired")
        data["card"] = {"number": _REJECTED_CARD if rejected else _GOOD_CARD, "cvv": "123"}
        if scenario == "card_expired":
            data["customer_id"] = f"{LAPSED_PREFIX}{customer}"
    if saga_type == t.SHIPMENT:
        data["backorder_allowed"] = (scenario == "backordered" if scenario != "ok"
                                     else rng.random() < 0.5)
    return data


class TrafficGenerator:
    """Starts sagas at ``settings.rate`` per second until stopped or ``max_sagas`` is reached."""

    def __init__(self, settings: DemoSettings, producer: Any, ground_truth: GroundTruth, *,
                 topic_prefix: str = "", run_id: str = "",
                 tracer_providers: dict[str, Any] | None = None) -> None:
        if settings.rate <= 0:
            from sagascope.exceptions import ConfigError

            raise ConfigError(f"demo.rate must be > 0 sagas per second, got {settings.rate}")
        self.settings = settings
        self.run_id = run_id or secrets.token_hex(2)
        self.ground_truth = ground_truth
        self._prefix = topic_prefix
        self._plan = plan_sagas(settings, self.run_id)
        providers = tracer_providers or {}
        self._producers = {
            client: InstrumentedProducer(producer, service=client, tracer_provider=providers.get(client))
            for client in CLIENTS
        }
        self._providers = providers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float = 10.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wait_finished(self, timeout_s: float) -> bool:
        """Whether the generator has started all ``max_sagas`` within ``timeout_s``."""
        if self._thread is None:
            return False
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def start_one(self, seq: int) -> SagaPlan:
        """Start saga number ``seq``: record its truth, then send its first message."""
        plan = self._plan(seq)
        self.ground_truth.record(plan)
        client, topic_name, type_, kind, _ = FIRST_MESSAGE[plan.saga_type]
        with start_saga(plan.saga_type, plan.saga_id,
                        tracer_provider=self._providers.get(client)):
            self._producers[client].send(
                t.topic(self._prefix, topic_name), value=dict(plan.data),
                key=plan.saga_id.encode(), type=type_, kind=kind, step=_first_step(type_),
            )
        self.started += 1
        return plan

    def _run(self) -> None:
        interval = 1.0 / self.settings.rate
        limit = self.settings.max_sagas
        for seq in itertools.count(1):
            if self._stop.is_set() or (limit and seq > limit):
                return
            try:
                self.start_one(seq)
            except Exception:
                log.exception("demo traffic: could not start saga %d", seq)
            if self._stop.wait(interval):
                return


def _first_step(type_: str) -> str:
    return "PlaceOrder" if type_ == "OrderPlaced" else type_
