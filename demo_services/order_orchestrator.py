"""The ``order`` saga type, orchestrated: confirm payment, check and deduct stock, or cancel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from sagascope.demo_services import _topics as t
from sagascope.demo_services._runtime import DemoService, Message


class OrderOrchestrator(DemoService):
    """The central controller of the ``order`` saga: every step is its command."""

    name = "order-orchestrator"
    topics = (t.ORDERS_COMMANDS, t.PAYMENTS_EVENTS, t.INVENTORY_EVENTS)
    saga_types = frozenset({t.ORDER})
    next_commands: ClassVar[Mapping[str, tuple[str, str]]] = {
        "PlaceOrder": (t.PAYMENTS_COMMANDS, "ConfirmPayment"),
        "PaymentConfirmed": (t.INVENTORY_COMMANDS, "CheckStock"),
        "StockAvailable": (t.INVENTORY_COMMANDS, "DeductStock"),
    }

    def on_message(self, message: Message) -> None:
        if self.take_next_step(message):
            return
        order = message.data
        saga_id = message.saga_id
        if message.type == "PaymentDeclined":
            self._cancel(order, saga_id, "insufficient funds", saga_status="failed")
        elif message.type == "StockUnavailable":
            # The payment was taken: undo it before cancelling.
            self.compensate(t.PAYMENTS_COMMANDS, "RefundPayment", order, saga_id=saga_id,
                            compensates="ConfirmPayment")
        elif message.type == "PaymentRefunded":
            self._cancel(order, saga_id, "out of stock", saga_status="compensated")
        elif message.type == "StockDeducted":
            self.send(t.ORDERS_EVENTS, "OrderConfirmed", order, saga_id=saga_id,
                      step="ConfirmOrder", saga_status="completed")

    def _cancel(self, order: dict[str, object], saga_id: str, reason: str, *,
                saga_status: str) -> None:
        self.send(t.ORDERS_EVENTS, "OrderCancelled", {**order, "reason": reason},
                  saga_id=saga_id, step="CancelOrder", saga_status=saga_status)
