"""Shipping: ships an order; an address it cannot serve is set aside (and the order waits)."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from sagascope.instrumentation import InstrumentedProducer, saga_handler

log = logging.getLogger(__name__)


class Shipping:
    def __init__(self, bootstrap_servers: str, topics: Any) -> None:
        self.topics = topics
        self.set_aside: list[str] = []
        self.consumer = KafkaConsumer(
            topics.shipping_commands, bootstrap_servers=bootstrap_servers,
            group_id=f"shipping-{topics.run}", auto_offset_reset="earliest",
            max_poll_interval_ms=4000, session_timeout_ms=6000)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers,
                                      value_serializer=lambda v: json.dumps(v).encode())
        self.producer = InstrumentedProducer(self.producer, service="shipping")

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                for record in records:
                    self.on_record(record)
        self.consumer.close()
        self.producer.close()

    @saga_handler("shipping")
    def on_record(self, record: Any) -> None:
        command = json.loads(record.value)
        self.on_command(command)

    def on_command(self, command: dict[str, Any]) -> None:
        if command["address"] == "nowhere":
            log.warning("order %s: no carrier serves %r", command["order_id"], command["address"])
            self.set_aside.append(command["order_id"])
            return
        self.producer.send(self.topics.shipping_events, {
            "type": "OrderShipped", "order_id": command["order_id"]}, type="OrderShipped")
