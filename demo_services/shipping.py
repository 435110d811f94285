"""Shipping: ships goods for order-fulfillment, and orchestrates ``shipment`` (with backorder).

``shipment``: charge, reserve inventory, ship and notify. Short of inventory, a shop that supports
backorders marks the order BackOrdered and tells the customer; one that does not cancels the
order with compensating transactions: refund, cancel, notify.
"""

from __future__ import annotations

from sagascope.demo_services import _topics as t
from sagascope.demo_services._runtime import DemoService, Message


class Shipping(DemoService):
    name = "shipping"
    topics = (t.SHIPPING_COMMANDS, t.PAYMENTS_EVENTS, t.INVENTORY_EVENTS)
    saga_types = frozenset({t.ORDER_FULFILLMENT, t.SHIPMENT})

    def on_message(self, message: Message) -> None:
        order = message.data
        saga_id = message.saga_id
        if message.type == "ShipGoods":
            self.send(t.SHIPPING_EVENTS, "GoodsShipped", order, saga_id=saga_id, step="ShipGoods")
        elif message.saga_type != t.SHIPMENT:
            return
        elif message.type == "ShipOrder":
            self.send(t.PAYMENTS_COMMANDS, "ChargePayment", order, saga_id=saga_id,
                      kind="command", step="ChargePayment")
        elif message.type == "PaymentCharged":
            self.send(t.INVENTORY_COMMANDS, "ReserveInventory", order, saga_id=saga_id,
                      kind="command", step="ReserveInventory")
        elif message.type == "InventoryReserved":
            self.send(t.SHIPPING_EVENTS, "OrderShipped", order, saga_id=saga_id, step="Ship")
            self._notify(order, saga_id, "shipped", "completed")
        elif message.type == "InventoryShort" and order.get("backorder_allowed"):
            self.send(t.SHIPPING_EVENTS, "OrderBackOrdered", {**order, "status": "BackOrdered"},
                      saga_id=saga_id, step="BackOrder")
            self._notify(order, saga_id, "backordered", "completed")
        elif message.type == "InventoryShort":
            self.send(t.PAYMENTS_COMMANDS, "RefundPayment", order, saga_id=saga_id,
                      kind="command", step="RefundPayment", saga_status="compensating",
                      compensates="ChargePayment")
        elif message.type == "PaymentRefunded":
            self.send(t.SHIPPING_EVENTS, "OrderCancelled", {**order, "status": "Cancelled"},
                      saga_id=saga_id, step="CancelOrder")
            self._notify(order, saga_id, "cancelled", "compensated")

    def _notify(self, order: dict[str, object], saga_id: str, template: str,
                outcome: str) -> None:
        self.send(t.NOTIFICATIONS_COMMANDS, "NotifyCustomer",
                  {"order_id": saga_id, "customer_id": order.get("customer_id"),
                   "template": template, "outcome": outcome},
                  saga_id=saga_id, kind="command", step="NotifyCustomer")
