"""One saga across kafka-python → confluent-kafka → aiokafka → kafka-python, collected and shown.

Every hop is a real client on the embedded broker: the confluent-kafka and aiokafka services
consume in their own consumer groups (both join on Tansu within a few seconds when
``max.poll.interval.ms`` is short); the last kafka-python service reads by assignment.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka_clients import confluent_producer, good_message
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from waiting import polled, wait_until

from sagascope.instrumentation import (
    InstrumentedProducer,
    KafkaSpanExporter,
    saga_handler,
    saga_outcome,
    start_saga,
)
from sagascope.settings import CollectorSettings
from sagascope.testing import contract_violations

pytestmark = pytest.mark.slow

SAGA = "order-3clients-1"


def _confluent_poll_one(bootstrap_servers: str, topic: str, group: str) -> Any:
    from confluent_kafka import Consumer

    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers, "group.id": group,
        "auto.offset.reset": "earliest", "max.poll.interval.ms": 6000,
        "session.timeout.ms": 6000, "log_level": 3,
    })
    consumer.subscribe([topic])
    try:
        (message,) = wait_until(
            lambda: good_message(consumer.poll(0.2)), 60,
            f"a message from {topic} for confluent-kafka group {group}", interval_s=0,
        )
        return message
    finally:
        consumer.close()


async def _aiokafka_hop(bootstrap_servers: str, source: str, group: str, handler: Any) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        source, bootstrap_servers=bootstrap_servers, group_id=group,
        auto_offset_reset="earliest", max_poll_interval_ms=4000, rebalance_timeout_ms=4000,
        session_timeout_ms=6000,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=60)
        await handler(record)
    finally:
        await consumer.stop()


def test_one_saga_crosses_the_three_clients_and_is_stored_in_causal_order(
    bootstrap_servers, make_topic, store, chdb_path, capsys
):
    from aiokafka import AIOKafkaProducer

    from sagascope.collector import Collector
    from sagascope.queries import SagaQueries

    orders, payments, stock, shipping = (make_topic(name) for name in
                                         ("orders", "payments", "stock", "shipping"))
    telemetry = make_topic("spans")
    prefix = orders.rsplit(".", 1)[0].split(".", 1)[1]
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "three-clients"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(BatchSpanProcessor(
        KafkaSpanExporter(bootstrap_servers, telemetry), schedule_delay_millis=200))
    kafka_python = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=1)

    # 1. storefront, kafka-python: starts the saga.
    storefront = InstrumentedProducer(kafka_python, service="storefront", tracer_provider=provider)
    with start_saga("order", SAGA, tracer_provider=provider):
        storefront.send(orders, {"order": SAGA}, SAGA, type="PlaceOrder", kind="command",
                        step="PlaceOrder")
    storefront.flush(10)

    # 2. payment, confluent-kafka: consumes in its group, answers with its own producer.
    payment = InstrumentedProducer(confluent_producer(bootstrap_servers), service="payment",
                                   tracer_provider=provider)

    @saga_handler("payment", consumer_group="payment", tracer_provider=provider)
    def on_place_order(message: Any) -> None:
        payment.send(payments, {"order": SAGA}, SAGA, type="PaymentConfirmed",
                     step="ConfirmPayment")

    on_place_order(_confluent_poll_one(bootstrap_servers, orders, f"payment-{prefix}"))
    assert payment.flush(10) == 0

    # 3. inventory, aiokafka: an async handler in its group, awaiting its producer.
    async def inventory() -> None:
        client = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
        await client.start()
        producer = InstrumentedProducer(client, service="inventory", tracer_provider=provider)

        @saga_handler("inventory", consumer_group="inventory", tracer_provider=provider)
        async def on_payment_confirmed(record: Any) -> None:
            await producer.send(stock, {"order": SAGA}, SAGA, type="StockReserved",
                                step="ReserveStock")

        try:
            await _aiokafka_hop(bootstrap_servers, payments, f"inventory-{prefix}",
                                on_payment_confirmed)
        finally:
            await producer.close()

    asyncio.run(inventory())

    # 4. shipping, kafka-python again: ends the saga.
    shipper = InstrumentedProducer(kafka_python, service="shipping", tracer_provider=provider)

    @saga_handler("shipping", tracer_provider=provider)
    def on_stock_reserved(record: Any) -> None:
        saga_outcome("completed")
        shipper.send(shipping, {"order": SAGA}, SAGA, type="OrderShipped", step="Ship")

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    consumer.assign([TopicPartition(stock, 0)])
    consumer.seek_to_beginning()
    (record,) = wait_until(lambda: polled(consumer), 30, "stock")
    consumer.close()
    on_stock_reserved(record)
    shipper.flush(10)
    provider.force_flush()

    collector = Collector(store, bootstrap_servers, CollectorSettings(
        group_id=f"collector-{prefix}", include=rf"(orders|payments|stock|shipping|spans)\.{prefix}.*",
        telemetry_topic=telemetry, flush_interval_s=0.3, max_poll_interval_ms=3000,
        session_timeout_ms=3000, topic_refresh_s=1.0,
    ))
    collector.start()
    try:
        flow = wait_until(lambda: _flow_of_four(SagaQueries(store)), 90, "the four messages")
        stored_spans = wait_until(lambda: _stored_spans(store, telemetry), 60, "the spans")
    finally:
        collector.stop()
        provider.shutdown()
        kafka_python.close(5)

    messages = flow.messages
    assert [m.type for m in messages] == [
        "PlaceOrder", "PaymentConfirmed", "StockReserved", "OrderShipped"]
    assert [m.source for m in messages] == ["storefront", "payment", "inventory", "shipping"]
    assert {m.saga_id for m in messages} == {SAGA}
    assert len({m.trace_id for m in messages}) == 1
    assert [m.causation_id for m in messages[1:]] == [m.message_id for m in messages[:-1]]
    assert flow.status == "completed"
    for m in messages:
        assert contract_violations([(k, v.encode()) for k, v in m.headers.items()]) == [], m.type

    # Each handler's CONSUMER span links to the PRODUCER span of the message it handled,
    # and the collector stored those links.
    spans = memory.get_finished_spans()
    producer_span = {s.attributes["messaging.message.id"]: s.context.span_id
                     for s in spans if s.kind.name == "PRODUCER"}
    consumer_links = {s.attributes["messaging.message.id"]: [link.context.span_id for link in s.links]
                      for s in spans if s.kind.name == "CONSUMER"}
    for m in messages[:-1]:
        assert consumer_links[m.message_id] == [producer_span[m.message_id]], m.type
    stored_links = {row[0]: row[1] for row in stored_spans}
    for m in messages[:-1]:
        assert stored_links[m.message_id] == [
            {"trace_id": m.trace_id, "span_id": f"{producer_span[m.message_id]:016x}"}]

    # `sagascope flow` prints the four hops in causal order.
    from sagascope.cli import main

    capsys.readouterr()
    assert main(["flow", SAGA, "--store-path", chdb_path, "--database", store.database]) == 0
    out = capsys.readouterr().out
    assert f"saga {SAGA}" in out and "status=completed" in out
    hops = ["PlaceOrder", "PaymentConfirmed", "StockReserved", "OrderShipped"]
    lines = [next(i for i, line in enumerate(out.splitlines()) if hop in line) for hop in hops]
    assert lines == sorted(lines)


def _flow_of_four(queries: Any) -> Any:
    from sagascope.queries import NotFound

    try:
        flow = queries.flow(SAGA)
    except NotFound:
        return None
    return flow if len(flow.messages) >= 4 else None


def _stored_spans(store: Any, telemetry: str) -> list[Any] | None:
    rows = store.query(
        "SELECT message_id, links FROM spans WHERE topic = {t:String} AND kind = 'CONSUMER'",
        {"t": telemetry},
    ).rows
    return rows if len(rows) >= 3 else None

