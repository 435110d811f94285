"""Payment: reserves an order's amount, and refunds it when the order is undone."""

from __future__ import annotations

import json
import threading
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from sagascope.instrumentation import InstrumentedProducer, saga_handler

LIMIT = 500


class Payment:
    def __init__(self, bootstrap_servers: str, topics: Any) -> None:
        self.topics = topics
        self.consumer = KafkaConsumer(
            topics.payment_commands, bootstrap_servers=bootstrap_servers,
            group_id=f"payment-{topics.run}", auto_offset_reset="earliest",
            max_poll_interval_ms=4000, session_timeout_ms=6000)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers,
                                      value_serializer=lambda v: json.dumps(v).encode())
        self.producer = InstrumentedProducer(self.producer, service="payment")

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                for record in records:
                    self.on_record(record)
        self.consumer.close()
        self.producer.close()

    @saga_handler("payment")
    def on_record(self, record: Any) -> None:
        command = json.loads(record.value)
        self.on_command(command)

    def on_command(self, command: dict[str, Any]) -> None:
        order_id = command["order_id"]
        if command["type"] == "ReservePayment" and command["amount"] > LIMIT:
            self.producer.send(self.topics.payment_events, {
                "type": "PaymentDeclined", "order_id": order_id, "reason": "over the limit"},
                type="PaymentDeclined")
        elif command["type"] == "ReservePayment":
            self.producer.send(self.topics.payment_events, {
                "type": "PaymentReserved", "order_id": order_id}, type="PaymentReserved",
                step="ReservePayment")
        elif command["type"] == "RefundPayment":
            self.producer.send(self.topics.payment_events, {
                "type": "PaymentRefunded", "order_id": order_id}, type="PaymentRefunded")
