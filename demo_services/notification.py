"""Notification: tells the customer; its message ends the saga it was asked about."""

from __future__ import annotations

from sagascope.demo_services import _topics as t
from sagascope.demo_services._runtime import DemoService, Message

_OUTCOMES = frozenset({"completed", "failed", "compensated"})


class Notification(DemoService):
    name = "notification"
    topics = (t.NOTIFICATIONS_COMMANDS, t.SHIPPING_EVENTS)

    def on_message(self, message: Message) -> None:
        if message.type == "NotifyCustomer":
            outcome = str(message.data.get("outcome", ""))
            template = str(message.data.get("template", ""))
        elif message.type == "GoodsShipped":
            # order-fulfillment has no controller: the shipment event itself asks for the notification.
            outcome, template = "completed", "shipped"
        else:
            return
        self.send(t.NOTIFICATIONS_EVENTS, "CustomerNotified",
                  {"order_id": message.saga_id, "template": template,
                   "customer_id": message.data.get("customer_id")},
                  saga_id=message.saga_id, step="NotifyCustomer",
                  saga_status=outcome if outcome in _OUTCOMES else None)
