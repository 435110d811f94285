"""A third-party saga system, instrumented: its flows match its own truth, in few changed lines.

``thirdparty/`` holds four kafka-python services written without sagascope in mind (an order
orchestrator, payment, inventory, shipping; plain JSON with a ``type`` field; an orchestrated
order saga that refunds the payment when stock is out, and leaves an order waiting when no
carrier serves its address), and two instrumented copies: with the new forms, and with what
the earlier API asked for. Each copy runs on the real broker; the collector stores what it
sends into chDB; every flow's status and compensation pairing is compared with what the
orchestrator itself recorded.
"""

from __future__ import annotations

import importlib
import itertools
import re
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from collected import collecting
from thirdparty.lines_changed import counts
from waiting import wait_until

from sagascope.embedded import create_topics
from sagascope.instrumentation import DEFAULT_OUTCOME_TOPIC

pytestmark = pytest.mark.slow

_runs = itertools.count()
TOPICS = ("payment_commands", "payment_events", "inventory_commands", "inventory_events",
          "shipping_commands", "shipping_events", "order_events")


def _orders(run: str) -> list[dict[str, Any]]:
    """Two completed, one failed (over the payment limit), two compensated (no stock), one
    waiting (no carrier)."""
    shapes = [(120, "book", "Main St 1"), (900, "book", "Main St 2"), (60, "unobtainium", "Elm 3"),
              (80, "lamp", "nowhere"), (30, "lamp", "Oak 5"), (45, "unobtainium", "Elm 6")]
    return [{"order_id": f"order-{run}-{i}", "amount": amount, "sku": sku, "address": address}
            for i, (amount, sku, address) in enumerate(shapes)]


def _statuses(queries: Any, order_ids: list[str]) -> dict[str, str]:
    from sagascope.queries import NotFound

    found = {}
    for order_id in order_ids:
        try:
            found[order_id] = queries.flow(order_id).status
        except NotFound:
            found[order_id] = "not stored"
    return found


@pytest.mark.parametrize("form", ["instrumented", "instrumented_old"])
def test_the_instrumented_system_flows_match_its_own_truth(
    form, bootstrap_servers, make_topic, store
):
    run = f"{form}-{next(_runs)}"
    topics = SimpleNamespace(run=run, **{name: make_topic(name.replace("_", "-"))
                                         for name in TOPICS})
    create_topics(bootstrap_servers, {DEFAULT_OUTCOME_TOPIC: 1})

    def service(module: str, name: str) -> Any:
        return getattr(importlib.import_module(f"thirdparty.{form}.{module}"), name)(
            bootstrap_servers, topics)

    orchestrator = service("order_orchestrator", "OrderOrchestrator")
    shipping = service("shipping", "Shipping")
    services = [orchestrator, service("payment", "Payment"), service("inventory", "Inventory"),
                shipping]
    stop = threading.Event()
    threads = [threading.Thread(target=s.run, args=(stop,), daemon=True) for s in services]
    for thread in threads:
        thread.start()
    orders = _orders(run)
    order_ids = [order["order_id"] for order in orders]
    include = "|".join(re.escape(name) for name in (*vars(topics).values(), DEFAULT_OUTCOME_TOPIC))
    try:
        for order in orders:
            orchestrator.place_order(order)
        wait_until(lambda: len(orchestrator.outcomes) == 5 and shipping.set_aside, 120,
                   "the system to settle its orders")
        truth = {order_id: orchestrator.outcomes.get(order_id, "running") for order_id in order_ids}
        with collecting(store, bootstrap_servers, include) as queries:
            wait_until(lambda: _statuses(queries, order_ids) == truth, 120,
                       f"the stored flows to match {truth}")
            pairs = queries.compensations()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert sorted(truth.values()) == sorted(
        ["completed", "completed", "failed", "compensated", "compensated", "running"])
    assert shipping.set_aside == [orders[3]["order_id"]]
    compensated = sorted(o for o, status in truth.items() if status == "compensated")
    assert sorted((p.saga_id, p.step, p.undo_types, p.state, p.completion_type) for p in pairs) == [
        (order_id, "ReservePayment", ("PaymentRefunded", "RefundPayment"), "completed",
         "PaymentRefunded")
        for order_id in compensated]


def test_the_new_forms_change_at_most_half_the_lines_of_the_old():
    new, old = counts("instrumented"), counts("instrumented_old")
    assert sum(new.values()) * 2 <= sum(old.values()), (new, old)
