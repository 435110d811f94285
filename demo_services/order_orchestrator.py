"""The ``order`` saga type, orchestrated: confirm payment, check and deduct stock, or cancel."""

from __future__ import annotations

from sagascope.demo_services import _topics as t
from sagascope.demo_services._runtime import DemoService, Message


class OrderOrchestrator(DemoService):
    """The central controller of the ``order`` saga: every step is its command."""

    name = "order-orchestrator"
    topics = (t.ORDERS_COMMANDS, t.PAYMENTS_EVENTS, t.INVENTORY_EVENTS)
    saga_types = frozenset({t.ORDER})

    def on_message(self, message: Message) -> None:
        order = message.data
        saga_id = message.saga_id
        if message.type == "PlaceOrder":
            self.send(t.PAYMENTS_COMMANDS, "ConfirmPayment", order, saga_id=saga_id,
                      kind="command", step="ConfirmPayment")
        elif message.type == "PaymentDeclined":
            self.send(t.ORDERS_EVENTS, "OrderCancelled", {**order, "reason": "insufficient funds"},
                      saga_id=saga_id, step="CancelOrder", saga_status="failed")
        elif message.type == "PaymentConfirmed":
            self.send(t.INVENTORY_COMMANDS, "CheckStock", order, saga_id=saga_id,
                      kind="command", step="CheckStock")
        elif message.type == "StockAvailable":
            self.send(t.INVENTORY_COMMANDS, "DeductStock", order, saga_id=saga_id,
                      kind="command", step="DeductStock")
        elif message.type == "StockUnavailable":
            # The payment was taken: undo it before cancelling.
            self.send(t.PAYMENTS_COMMANDS, "RefundPayment", order, saga_id=saga_id,
                      kind="command", step="RefundPayment", saga_status="compensating",
                      compensates="ConfirmPayment")
        elif message.type == "PaymentRefunded":
            self.send(t.ORDERS_EVENTS, "OrderCancelled", {**order, "reason": "out of stock"},
                      saga_id=saga_id, step="CancelOrder", saga_status="compensated")
        elif message.type == "StockDeducted":
            self.send(t.ORDERS_EVENTS, "OrderConfirmed", order, saga_id=saga_id,
                      step="ConfirmOrder", saga_status="completed")
