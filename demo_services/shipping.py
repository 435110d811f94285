"""Shipping: ships goods for order-fulfillment, and orchestrates ``shipment`` (with backorder).

``shipment``: charge, reserve inventory, ship and notify. Short of inventory, a shop that supports
backorders marks the order BackOrdered and tells the customer; one that does not cancels the
order with compensating transactions: refund, cancel, notify.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from sagascope.demo_services import _topics as t
from sagascope.demo_services._runtime import DemoService, Message


class Shipping(DemoService):
    name = "shipping"
    topics = (t.SHIPPING_COMMANDS, t.PAYMENTS_EVENTS, t.INVENTORY_EVENTS)
    saga_types = frozenset({t.ORDER_FULFILLMENT, t.SHIPMENT})
    #: The forward steps of ``shipment``.
    next_commands: ClassVar[Mapping[str, tuple[str, str]]] = {
        "ShipOrder": (t.PAYMENTS_COMMANDS, "ChargePayment"),
        "PaymentCharged": (t.INVENTORY_COMMANDS, "ReserveInventory"),
    }

    def on_message(self, message: Message) -> None:
        order = message.data
        saga_id = message.saga_id
        customer_id = order.get("customer_id")
        if message.type == "ShipGoods":
            self.send(t.SHIPPING_EVENTS, "GoodsShipped", order, saga_id=saga_id, step="ShipGoods")
        elif message.saga_type != t.SHIPMENT or self.take_next_step(message):
            return
        elif message.type == "InventoryReserved":
            self.send(t.SHIPPING_EVENTS, "OrderShipped", order, saga_id=saga_id, step="Ship")
            self.notify_customer(saga_id, customer_id, "shipped", "completed")
        elif message.type == "InventoryShort" and order.get("backorder_allowed"):
            self.send(t.SHIPPING_EVENTS, "OrderBackOrdered", {**order, "status": "BackOrdered"},
                      saga_id=saga_id, step="BackOrder")
            self.notify_customer(saga_id, customer_id, "backordered", "completed")
        elif message.type == "InventoryShort":
            self.compensate(t.PAYMENTS_COMMANDS, "RefundPayment", order, saga_id=saga_id,
                            compensates="ChargePayment")
        elif message.type == "PaymentRefunded":
            self.send(t.SHIPPING_EVENTS, "OrderCancelled", {**order, "status": "Cancelled"},
                      saga_id=saga_id, step="CancelOrder")
            self.notify_customer(saga_id, customer_id, "cancelled", "compensated")
