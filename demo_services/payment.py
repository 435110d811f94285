"""Payment, shared by all four saga types; in order-fulfillment it waits long for a new card.

A rejected card asks the customer to update it and waits ("seven days", scaled down to
``demo.card_update_wait_s``): an updated card is charged, silence ends in PaymentFailed.
Written with confluent-kafka, so every flow crosses a librdkafka service.
"""

from __future__ import annotations

import logging

from sagascope.demo_services import _topics as t
from sagascope.demo_services._runtime import CONFLUENT, DemoService, Message, ServiceEnv

log = logging.getLogger(__name__)

#: Orders above this amount exceed the customer's funds.
CREDIT_LIMIT = 5000.0
#: Card numbers the issuer rejects.
REJECTED_CARDS = frozenset({"4000-0000-0000-0002"})

_REPLIES = {
    # command -> (success event, step)
    "ConfirmPayment": ("PaymentConfirmed", "ConfirmPayment"),
    "ChargePayment": ("PaymentCharged", "ChargePayment"),
    "RefundPayment": ("PaymentRefunded", "RefundPayment"),
    "ReimbursePayment": ("PaymentReimbursed", "ReimbursePayment"),
}


class Payment(DemoService):
    name = "payment"
    client = CONFLUENT
    topics = (t.PAYMENTS_COMMANDS, t.CUSTOMERS_EVENTS)

    def __init__(self, env: ServiceEnv) -> None:
        super().__init__(env)
        #: Sagas waiting for the customer's new card: saga id -> the RetrievePayment message.
        self._awaiting_card: dict[str, Message] = {}

    def on_message(self, message: Message) -> None:
        data = message.data
        saga_id = message.saga_id
        if message.type == "ConfirmPayment" and float(data.get("amount", 0)) > CREDIT_LIMIT:
            self.send(t.PAYMENTS_EVENTS, "PaymentDeclined", {**data, "reason": "insufficient funds"},
                      saga_id=saga_id, step="ConfirmPayment")
        elif message.type in _REPLIES:
            event, step = _REPLIES[message.type]
            self.send(t.PAYMENTS_EVENTS, event, data, saga_id=saga_id, step=step)
        elif message.type == "RetrievePayment":
            self._retrieve(message)
        elif message.type == "CardUpdated":
            pending = self._awaiting_card.pop(saga_id, None)
            if pending is None:
                log.info("payment: card update for saga %s came too late", saga_id)
                return
            self.send(t.PAYMENTS_EVENTS, "PaymentRetrieved", {**pending.data, **data},
                      saga_id=saga_id, step="RetrievePayment")

    def _retrieve(self, message: Message) -> None:
        card = message.data.get("card") or {}
        if str(card.get("number", "")) not in REJECTED_CARDS:
            self.send(t.PAYMENTS_EVENTS, "PaymentRetrieved", message.data,
                      saga_id=message.saga_id, step="RetrievePayment")
            return
        self._awaiting_card[message.saga_id] = message
        self.send(t.PAYMENTS_EVENTS, "CardUpdateRequested",
                  {"order_id": message.saga_id, "customer_id": message.data.get("customer_id"),
                   "wait_s": self.env.settings.card_update_wait_s},
                  saga_id=message.saga_id, step="RetrievePayment")
        self.schedule(self.env.settings.card_update_wait_s, message)

    def on_timer(self, message: Message) -> None:
        if self._awaiting_card.pop(message.saga_id, None) is None:
            return  # the customer updated the card in time
        self.send(t.PAYMENTS_EVENTS, "PaymentFailed",
                  {"order_id": message.saga_id, "reason": "card not updated in time"},
                  saga_id=message.saga_id, step="RetrievePayment", saga_status="failed")
