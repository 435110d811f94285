"""``for record in handled(consumer)``: each record of a consumer loop handled in turn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka_clients import records_in

from sagascope.instrumentation import (
    InstrumentedProducer,
    current_saga,
    handled,
    saga_outcome,
    start_saga,
)
from sagascope.instrumentation import contract as c
from sagascope.testing import consumer_record
from sagascope.testing import header_value as header

SAGAS = ("order-1", "order-2")


def _send_in_sagas(kafka_producer: Any, topic: str) -> None:
    producer = InstrumentedProducer(kafka_producer, service="orders")
    for saga_id in SAGAS:
        with start_saga("order", saga_id):
            producer.send(topic, {"type": "ReservePayment"}, key=saga_id, kind="command")
    producer.flush()


def _loop_kafka_python(bootstrap_servers: str, topic: str, body: Any, provider: Any) -> None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                             consumer_timeout_ms=20_000)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    try:
        for record in handled(consumer, service="payment", tracer_provider=provider):
            if body(record) == "stop":
                break
    finally:
        consumer.close()


def _loop_confluent(bootstrap_servers: str, topic: str, body: Any, provider: Any) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer
    from confluent_kafka import TopicPartition as ConfluentPartition

    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "handled",
                         "enable.auto.commit": False, "log_level": 3})
    consumer.assign([ConfluentPartition(topic, 0, OFFSET_BEGINNING)])
    deadline = time.monotonic() + 20
    try:
        for msg in handled(consumer, service="payment", tracer_provider=provider,
                           poll_timeout_s=0.2):
            assert time.monotonic() < deadline, "the records never arrived"
            if msg is None or msg.error():
                continue
            if body(msg) == "stop":
                break
    finally:
        consumer.close()


async def _loop_aiokafka(bootstrap_servers: str, topic: str, body: Any, provider: Any) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as AioPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([AioPartition(topic, 0)])
        await consumer.seek_to_beginning(AioPartition(topic, 0))
        async with asyncio.timeout(20):
            async for record in handled(consumer, service="payment", tracer_provider=provider):
                if await body(record) == "stop":
                    break
    finally:
        await consumer.stop()
        # By a break or an exception, leaving the loop restores this task's context.
        assert current_saga() is None, "the record's saga is still current after the loop"


CLIENTS = ["kafka-python", "confluent-kafka", "aiokafka"]


def _run_loop(client: str, bootstrap_servers: str, topic: str, body: Any, provider: Any) -> None:
    """``body(record)`` for each record of ``topic`` in ``client``'s handled loop, until it
    returns "stop"."""
    if client == "kafka-python":
        _loop_kafka_python(bootstrap_servers, topic, body, provider)
    elif client == "confluent-kafka":
        _loop_confluent(bootstrap_servers, topic, body, provider)
    else:
        async def async_body(record: Any) -> Any:
            return body(record)

        asyncio.run(_loop_aiokafka(bootstrap_servers, topic, async_body, provider))


@contextlib.asynccontextmanager
async def _aiokafka_producer(bootstrap_servers: str, **options: Any) -> AsyncIterator[Any]:
    """An instrumented aiokafka producer, started, and closed when the block ends."""
    from aiokafka import AIOKafkaProducer

    client = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await client.start()
    producer = InstrumentedProducer(client, **options)
    try:
        yield producer
    finally:
        await producer.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_each_record_is_handled_in_its_saga_and_what_the_body_sends_joins_it(
    client, kafka_producer, make_topic, read_records, bootstrap_servers, spans
):
    inbox, outbox = make_topic("inbox"), make_topic("outbox")
    _send_in_sagas(kafka_producer, inbox)
    handled_ids = []

    if client == "aiokafka":
        async def serve() -> None:
            async with _aiokafka_producer(bootstrap_servers, service="payment") as producer:

                async def body(record: Any) -> str:
                    await producer.send(outbox, {"type": "PaymentReserved"})
                    handled_ids.append(current_saga().saga_id)
                    return "stop" if len(handled_ids) == len(SAGAS) else "go on"

                await _loop_aiokafka(bootstrap_servers, inbox, body, spans.tracer_provider)

        asyncio.run(serve())
    else:
        producer = InstrumentedProducer(kafka_producer, service="payment")

        def body(record: Any) -> str:
            producer.send(outbox, {"type": "PaymentReserved"})
            handled_ids.append(current_saga().saga_id)
            return "stop" if len(handled_ids) == len(SAGAS) else "go on"

        _run_loop(client, bootstrap_servers, inbox, body, spans.tracer_provider)
        producer.flush()

    assert handled_ids == list(SAGAS)
    assert current_saga() is None
    first, second = spans.finished(kind="CONSUMER")
    assert [s.attributes["sagascope.saga.id"] for s in (first, second)] == list(SAGAS)
    assert first.end_time <= second.start_time  # one record's handling ends as the next begins
    received = read_records(inbox, 2)
    replies = read_records(outbox, 2)
    for reply, record, span in zip(replies, received, (first, second), strict=True):
        assert header(reply, c.CE_SAGAID) == header(record, c.CE_SAGAID)
        assert header(reply, c.CE_CAUSATIONID) == header(record, c.CE_ID)
        trace_id = c.parse_traceparent(header(reply, c.TRACEPARENT)).trace_id
        assert trace_id == format(span.context.trace_id, "032x")


def _records_of(*saga_ids: str) -> list[Any]:
    return [consumer_record("orders", b"{}", offset=i, headers=[
        (c.CE_ID, f"msg-{i}".encode()), (c.CE_SAGAID, saga_id.encode()), (c.CE_SAGATYPE, b"order")])
        for i, saga_id in enumerate(saga_ids)]


@pytest.mark.parametrize("client", CLIENTS)
def test_an_outcome_is_sent_when_the_loop_asks_for_the_next_record(
    client, kafka_producer, make_topic, bootstrap_servers, spans
):
    inbox, outcomes = make_topic("inbox"), make_topic("outcomes")
    _send_in_sagas(kafka_producer, inbox)
    producer = InstrumentedProducer(kafka_producer, service="orders", outcome_topic=outcomes)
    markers_seen = []

    def body(record: Any) -> str:
        producer.flush()
        markers_seen.append(records_in(bootstrap_servers, outcomes))
        saga_outcome("completed")
        return "stop" if len(markers_seen) == len(SAGAS) else "go on"

    _run_loop(client, bootstrap_servers, inbox, body, spans.tracer_provider)
    assert markers_seen == [0, 1]


def test_an_outcome_is_sent_when_the_loop_runs_out(kafka_producer, make_topic, read_records):
    outcomes = make_topic("outcomes")
    producer = InstrumentedProducer(kafka_producer, service="orders", outcome_topic=outcomes)
    for _record in handled(_records_of("order-1", "order-2"), service="orders"):
        saga_outcome("completed")
    producer.flush()
    assert [header(m, c.CE_SAGAID) for m in read_records(outcomes, 2)] == ["order-1", "order-2"]


def test_async_for_awaits_an_aiokafka_outcome_before_the_next_record(
    kafka_producer, make_topic, bootstrap_servers, spans
):
    inbox, outcomes = make_topic("inbox"), make_topic("outcomes")
    _send_in_sagas(kafka_producer, inbox)
    markers_seen = []

    async def serve() -> None:
        async with _aiokafka_producer(bootstrap_servers, service="orders",
                                      outcome_topic=outcomes) as producer:

            async def body(record: Any) -> str:
                await producer.flush()
                markers_seen.append(records_in(bootstrap_servers, outcomes))
                saga_outcome("completed")
                return "stop" if len(markers_seen) == len(SAGAS) else "go on"

            await _loop_aiokafka(bootstrap_servers, inbox, body, spans.tracer_provider)

    asyncio.run(serve())
    assert markers_seen == [0, 1]


def test_leaving_the_loop_by_break_ends_the_handling_and_keeps_a_pending_outcome_unsent(
    kafka_producer, make_topic, bootstrap_servers, spans, caplog
):
    outcomes = make_topic("outcomes")
    producer = InstrumentedProducer(kafka_producer, service="orders", outcome_topic=outcomes)
    with caplog.at_level(logging.WARNING, logger="sagascope"):
        for _record in handled(_records_of("order-1", "order-2"),
                              tracer_provider=spans.tracer_provider):
            saga_outcome("completed")
            break
    assert current_saga() is None
    (span,) = spans.finished(kind="CONSUMER")
    assert span.status.status_code.name == "UNSET"
    producer.flush()
    assert records_in(bootstrap_servers, outcomes) == 0
    assert "outcome 'completed' not sent: the loop was left" in caplog.text


@pytest.mark.parametrize("client", CLIENTS)
def test_an_exception_leaving_the_loop_ends_the_handling_but_cannot_mark_the_span(
    client, kafka_producer, make_topic, bootstrap_servers, spans
):
    inbox = make_topic("inbox")
    _send_in_sagas(kafka_producer, inbox)
    error = KeyError("missing")

    def body(record: Any) -> str:
        raise error

    with pytest.raises(KeyError) as caught:
        _run_loop(client, bootstrap_servers, inbox, body, spans.tracer_provider)
    assert caught.value is error
    assert current_saga() is None
    (span,) = spans.finished(kind="CONSUMER")
    assert span.attributes["sagascope.saga.id"] == SAGAS[0]
    # The documented limit: a loop sees its iterator closed, not the exception.
    assert span.status.status_code.name == "UNSET"


def test_a_confluent_poll_loop_yields_timeouts_and_errors_untouched_and_untraced(
    kafka_producer, make_topic, bootstrap_servers, spans
):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError
    from confluent_kafka import TopicPartition as ConfluentPartition

    topic = make_topic()
    _send_in_sagas(kafka_producer, topic)
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "handled",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "log_level": 3})
    consumer.assign([ConfluentPartition(topic, 0, OFFSET_BEGINNING)])
    seen: list[str] = []
    deadline = time.monotonic() + 20
    try:
        for msg in handled(consumer, tracer_provider=spans.tracer_provider, poll_timeout_s=0.2):
            assert time.monotonic() < deadline, f"saw only {seen}"
            if msg is None:
                if "end of partition" in seen:  # timeouts before it: still connecting
                    seen.append("timeout")
                    break
                continue
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF
                seen.append("end of partition")
                assert current_saga() is None
            else:
                seen.append(current_saga().saga_id)
    finally:
        consumer.close()
    assert seen == [*SAGAS, "end of partition", "timeout"]
    assert len(spans.finished(kind="CONSUMER")) == 2


def test_a_consumer_that_only_polls_needs_a_poll_timeout(bootstrap_servers):
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "handled"})
    try:
        with pytest.raises(TypeError, match="poll_timeout_s"):
            handled(consumer)
    finally:
        consumer.close()


def test_a_poll_timeout_is_refused_for_what_iterates():
    with pytest.raises(TypeError, match="poll_timeout_s is for a confluent"):
        handled(_records_of("order-1"), poll_timeout_s=1.0)
