"""The customer (simulated): asked for a new card, most update it in time; lapsed ones never do.

The update comes as a new request, so the saga continues in a new trace (one saga, two traces).
"""

from __future__ import annotations

from sagascope.demo_services import _topics as t
from sagascope.demo_services._runtime import DemoService, Message
from sagascope.instrumentation import start_saga

#: Customers who never answer a card-update request.
LAPSED_PREFIX = "C-LAPSED-"
#: Share of the payment's wait after which a responsive customer updates the card.
RESPONSE_FRACTION = 0.3


class Customer(DemoService):
    name = "customer"
    topics = (t.PAYMENTS_EVENTS,)
    saga_types = frozenset({t.ORDER_FULFILLMENT})

    def on_message(self, message: Message) -> None:
        if message.type != "CardUpdateRequested":
            return
        if str(message.data.get("customer_id", "")).startswith(LAPSED_PREFIX):
            return
        wait_s = float(message.data.get("wait_s", 1.0))
        self.schedule(wait_s * RESPONSE_FRACTION, message)

    def on_timer(self, message: Message) -> None:
        # The customer comes back days later through the web shop: a new request, so the
        # rest of the saga runs in a new trace under the same saga id.
        with start_saga(t.ORDER_FULFILLMENT, message.saga_id,
                        tracer_provider=self.env.tracer_provider):
            self.send(t.CUSTOMERS_EVENTS, "CardUpdated",
                      {"customer_id": message.data.get("customer_id"),
                       "card": {"number": "4111-1111-1111-1111"}},
                      saga_id=message.saga_id, step="UpdateCard")
