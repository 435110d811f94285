"""Orders: runs the order saga (payment, then stock, then shipping; refunds when out of stock)."""

from __future__ import annotations

import json
import threading
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from sagascope.instrumentation import InstrumentedProducer, saga_handler, start_saga


class OrderOrchestrator:
    def __init__(self, bootstrap_servers: str, topics: Any) -> None:
        self.topics = topics
        self.orders: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, str] = {}
        self.consumer = KafkaConsumer(
            topics.payment_events, topics.inventory_events, topics.shipping_events,
            bootstrap_servers=bootstrap_servers, group_id=f"orders-{topics.run}",
            auto_offset_reset="earliest", max_poll_interval_ms=4000, session_timeout_ms=6000)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers,
                                      value_serializer=lambda v: json.dumps(v).encode())
        self.producer = InstrumentedProducer(self.producer, service="orders")

    def place_order(self, order: dict[str, Any]) -> None:
        """What the storefront's POST /orders calls."""
        self.orders[order["order_id"]] = order
        with start_saga("order", saga_id=order["order_id"]):
            self.producer.send(self.topics.payment_commands, {
                "type": "ReservePayment", "order_id": order["order_id"], "amount": order["amount"]},
                type="ReservePayment")

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                for record in records:
                    self.on_record(record)
        self.consumer.close()
        self.producer.close()

    @saga_handler("orders")
    def on_record(self, record: Any) -> None:
        event = json.loads(record.value)
        self.on_event(event)

    def on_event(self, event: dict[str, Any]) -> None:
        order = self.orders[event["order_id"]]
        order_id = order["order_id"]
        if event["type"] == "PaymentReserved":
            self.producer.send(self.topics.inventory_commands, {
                "type": "ReserveStock", "order_id": order_id, "sku": order["sku"]}, type="ReserveStock")
        elif event["type"] == "PaymentDeclined":
            self.outcomes[order_id] = "failed"
            self.producer.send(self.topics.order_events, {"type": "OrderFailed", "order_id": order_id},
                               type="OrderFailed", saga_status="failed")
        elif event["type"] == "StockReserved":
            self.producer.send(self.topics.shipping_commands, {
                "type": "ShipOrder", "order_id": order_id, "address": order["address"]}, type="ShipOrder")
        elif event["type"] == "OutOfStock":
            self.producer.send(self.topics.payment_commands, {
                "type": "RefundPayment", "order_id": order_id, "amount": order["amount"]},
                type="RefundPayment", kind="command", compensates="ReservePayment")
        elif event["type"] == "PaymentRefunded":
            self.outcomes[order_id] = "compensated"
            self.producer.send(self.topics.order_events, {"type": "OrderCompensated", "order_id": order_id},
                               type="OrderCompensated", saga_status="compensated")
        elif event["type"] == "OrderShipped":
            self.outcomes[order_id] = "completed"
            self.producer.send(self.topics.order_events, {"type": "OrderCompleted", "order_id": order_id},
                               type="OrderCompleted", saga_status="completed")
