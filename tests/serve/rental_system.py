"""A small saga system of its own, as a user's would be: bike rentals over three services.

``rental-desk`` starts each ``bike-rental`` saga with a ``ReserveBike`` command on
``fleet.commands``; ``fleet`` answers ``BikeReserved`` on ``fleet.events`` (except for the
bikes it has lost, whose sagas stall there); ``billing`` takes the deposit and ends the saga
with ``DepositCharged`` (completed) on ``billing.events``. Each service is a thread with its
own kafka-python consumer (partitions assigned, no group) and instrumented producer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from sagascope.embedded import create_topics
from sagascope.instrumentation import InstrumentedProducer, saga_handler, saga_outcome, start_saga

FLEET_COMMANDS = "fleet.commands"
FLEET_EVENTS = "fleet.events"
BILLING_EVENTS = "billing.events"
TOPICS = (FLEET_COMMANDS, FLEET_EVENTS, BILLING_EVENTS)
SAGA_TYPE = "bike-rental"


class RentalSystem:
    """``with RentalSystem(bootstrap, lost_bikes={"B-3"}) as system: system.rent("R-1", "B-1")``."""

    def __init__(self, bootstrap_servers: str, *, lost_bikes: frozenset[str] = frozenset()) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.lost_bikes = lost_bikes
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._producers: list[KafkaProducer] = []

    def __enter__(self) -> RentalSystem:
        create_topics(self.bootstrap_servers, dict.fromkeys(TOPICS, 2))
        self.desk = self._producer("rental-desk")
        fleet = self._producer("fleet")
        billing = self._producer("billing")

        @saga_handler("fleet")
        def on_fleet_command(record: Any) -> None:
            bike = json.loads(record.value)["bike"]
            if bike not in self.lost_bikes:
                fleet.send(FLEET_EVENTS, _json({"bike": bike}), key=record.key, type="BikeReserved",
                           step="reserve-bike")

        @saga_handler("billing")
        def on_fleet_event(record: Any) -> None:
            saga_outcome("completed")
            billing.send(BILLING_EVENTS, _json({"deposit": 50}), key=record.key, type="DepositCharged",
                         step="charge-deposit")

        self._serve(FLEET_COMMANDS, on_fleet_command, fleet)
        self._serve(FLEET_EVENTS, on_fleet_event, billing)
        return self

    def rent(self, rental_id: str, bike: str) -> None:
        """Start one rental saga (its id is ``rental_id``)."""
        with start_saga(SAGA_TYPE, saga_id=rental_id):
            self.desk.send(FLEET_COMMANDS, _json({"bike": bike}), key=rental_id.encode(),
                           type="ReserveBike", kind="command", step="reserve-bike")
        self.desk.flush()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        for producer in self._producers:
            producer.close(5)

    def _producer(self, service: str) -> InstrumentedProducer:
        raw = KafkaProducer(bootstrap_servers=self.bootstrap_servers, client_id=service)
        self._producers.append(raw)
        return InstrumentedProducer(raw, service=service)

    def _serve(self, topic: str, handler: Callable[[Any], None],
               producer: InstrumentedProducer) -> None:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap_servers, group_id=None,
                                 enable_auto_commit=False)
        consumer.assign([TopicPartition(topic, p) for p in (0, 1)])
        consumer.seek_to_beginning()

        def loop() -> None:
            try:
                while not self._stop.is_set():
                    for records in consumer.poll(timeout_ms=200).values():
                        for record in records:
                            handler(record)
                    producer.flush()
            finally:
                consumer.close()

        thread = threading.Thread(target=loop, name=f"rental-{topic}", daemon=True)
        thread.start()
        self._threads.append(thread)


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()
