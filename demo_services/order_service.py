"""The ``order-fulfillment`` saga type, decentralized: the order service turns events into commands.

No central controller: checkout emits ``OrderPlaced``; this service reacts to each event with
the next command (RetrievePayment, FetchGoods, ShipGoods) and, when goods are unavailable,
with the compensation (RefundPayment). The warehouse is a legacy system whose messages carry
no headers: the saga is picked up again from the business key in its payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from sagascope.demo_services import _topics as t
from sagascope.demo_services._runtime import DemoService, Message
from sagascope.instrumentation import start_saga


class OrderService(DemoService):
    name = "order-service"
    topics = (t.CHECKOUT_EVENTS, t.PAYMENTS_EVENTS, t.LEGACY_WMS_EVENTS)
    saga_types = frozenset({t.ORDER_FULFILLMENT})
    next_commands: ClassVar[Mapping[str, tuple[str, str]]] = {
        "OrderPlaced": (t.PAYMENTS_COMMANDS, "RetrievePayment"),
        "PaymentRetrieved": (t.WAREHOUSE_COMMANDS, "FetchGoods"),
    }

    def on_message(self, message: Message) -> None:
        if self.take_next_step(message):
            return
        if message.type == "PaymentRefunded":
            self.send(t.ORDERS_EVENTS, "OrderCancelled", message.data, saga_id=message.saga_id,
                      step="CancelOrder", saga_status="compensated")
        elif message.type in ("GoodsPicked", "GoodsOutOfStock"):
            self._on_warehouse(message)

    def _on_warehouse(self, message: Message) -> None:
        # A legacy record: no trace context, so the saga continues under its business key.
        saga_id = message.saga_id
        order = message.data.get("order") or {"order_id": saga_id}
        with start_saga(t.ORDER_FULFILLMENT, saga_id,
                        tracer_provider=self.env.tracer_provider):
            if message.type == "GoodsPicked":
                self.command(t.SHIPPING_COMMANDS, "ShipGoods", order, saga_id=saga_id)
            else:
                self.compensate(t.PAYMENTS_COMMANDS, "RefundPayment", order, saga_id=saga_id,
                                compensates="RetrievePayment")
