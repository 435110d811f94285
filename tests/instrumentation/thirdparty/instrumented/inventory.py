"""Inventory: reserves stock for an order, or says it is out of stock."""

from __future__ import annotations

import json
import threading
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from sagascope.instrumentation import InstrumentedProducer, handled


class Inventory:
    def __init__(self, bootstrap_servers: str, topics: Any) -> None:
        self.topics = topics
        self.stock = {"book": 10, "lamp": 10}
        self.consumer = KafkaConsumer(
            topics.inventory_commands, bootstrap_servers=bootstrap_servers,
            group_id=f"inventory-{topics.run}", auto_offset_reset="earliest",
            max_poll_interval_ms=4000, session_timeout_ms=6000)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers,
                                      value_serializer=lambda v: json.dumps(v).encode())
        self.producer = InstrumentedProducer(self.producer, service="inventory")

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                for record in handled(records):
                    command = json.loads(record.value)
                    self.on_command(command)
        self.consumer.close()
        self.producer.close()

    def on_command(self, command: dict[str, Any]) -> None:
        sku = command["sku"]
        if self.stock.get(sku, 0) > 0:
            self.stock[sku] -= 1
            self.producer.send(self.topics.inventory_events, {
                "type": "StockReserved", "order_id": command["order_id"], "sku": sku})
        else:
            self.producer.send(self.topics.inventory_events, {
                "type": "OutOfStock", "order_id": command["order_id"], "sku": sku})
