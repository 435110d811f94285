"""Serve the real dashboard over an alert storm raised by the real alerter (run by the browser
tests of the Alerts page, and by hand to look at it).

    python alerts_seeded_server.py STORE_DIR
prints ``URL <url>`` and serves until stdin closes.

The store holds order sagas stalled at three steps (payment with two kinds of wait, shipping,
reserve-stock) and some that moved on; the alerter opens and resolves their alerts as it would
in production; then on-call engineers acknowledge one group, silence another and leave a third.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from browser_harness import serve_until_stdin_closes
from seeding import ORDER_FLOW, SagaScript, order_saga, seed

from sagascope.alerter import Alerter
from sagascope.queries import SagaQueries, acknowledge
from sagascope.settings import AlertSettings, load_settings
from sagascope.store import ChdbStore, ensure_schema

THRESHOLD_S = 300.0


def _stalled_after(saga_id: str, start: datetime, last: str) -> SagaScript:
    """An order stalled after ``last``: ``placed``, ``stock``, ``authorized`` (payment) or
    ``shipping``."""
    saga = SagaScript(saga_id, ORDER_FLOW, start=start)
    saga.event("OrderPlaced", "orders", step="place-order", after_s=0)
    if last == "placed":
        return saga
    saga.command("ReserveStock", "orchestrator", step="reserve-stock")
    if last == "stock":
        return saga
    saga.event("StockReserved", "inventory", step="reserve-stock")
    saga.command("RetrievePayment", "orchestrator", step="payment")
    saga.event("PaymentAuthorized", "payment", step="payment")
    if last == "authorized":
        return saga
    saga.event("PaymentReceived", "payment", step="payment")
    saga.command("ShipOrder", "orchestrator", step="shipping")
    return saga


def _moved_on(saga_id: str, at: datetime, last: str) -> SagaScript:
    """The next message of a saga stalled after ``last`` (``placed`` or ``stock``)."""
    saga = SagaScript(saga_id, ORDER_FLOW, start=at)
    if last == "placed":
        saga.command("ReserveStock", "orchestrator", step="reserve-stock", after_s=0)
    else:
        saga.event("StockReserved", "inventory", step="reserve-stock", after_s=0)
    return saga


def seed_storm(store: ChdbStore, now: datetime) -> None:
    """Stalled and finished sagas, the alerter's alerts over them, and their handling."""
    start = now - timedelta(minutes=70)
    seed(store, [order_saga(f"order-{100 + i}", "completed", start=start + timedelta(minutes=i))
                 for i in range(6)])
    seed(store, [order_saga(f"order-{200 + i}", "stalled", start=start - timedelta(minutes=i))
                 for i in range(7)])
    seed(store, [_stalled_after(f"order-{300 + i}", start, "authorized") for i in range(2)])
    seed(store, [_stalled_after(f"order-{400 + i}", start, "shipping") for i in range(3)])
    seed(store, [_stalled_after(f"order-{500 + i}", start, "stock") for i in range(4)])
    seed(store, [_stalled_after(f"order-{600 + i}", start, "placed") for i in range(2)])
    settings = AlertSettings(default_threshold_s=THRESHOLD_S)
    alerter = Alerter(store, SagaQueries.from_settings(store, settings), settings, [],
                      "http://127.0.0.1:8501")
    alerter.evaluate_once(now - timedelta(minutes=50))
    # Two of the stock ones and both placed ones moved on: their alerts resolve.
    seed(store, [_moved_on(f"order-{500 + i}", now - timedelta(minutes=36 - i), "stock")
                 for i in range(2)],
         [_moved_on(f"order-{600 + i}", now - timedelta(minutes=34 - i), "placed")
          for i in range(2)])
    alerter.evaluate_once(now - timedelta(minutes=30))
    acknowledge(store, ORDER_FLOW, "reserve-stock", action="acknowledged", by="kim",
                now=now - timedelta(minutes=45))
    acknowledge(store, ORDER_FLOW, "reserve-stock", action="cleared", by="kim",
                note="not mine, back to the queue", now=now - timedelta(minutes=41))
    acknowledge(store, ORDER_FLOW, "shipping", action="silenced", by="dana",
                until=now + timedelta(hours=4), note="carrier API maintenance window",
                now=now - timedelta(minutes=25))
    acknowledge(store, ORDER_FLOW, "payment", action="acknowledged", by="sam.okafor",
                note="PSP latency, INC-4711", now=now - timedelta(minutes=8))


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    store = ChdbStore(sys.argv[1], "dashboard")
    ensure_schema(store)
    seed_storm(store, datetime.now(UTC))
    settings = load_settings(overrides={"dashboard.host": "127.0.0.1"}, environ={})
    serve_until_stdin_closes(store, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
