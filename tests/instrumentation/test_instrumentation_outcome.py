"""Saga outcomes without a business message: ``mark_outcome`` and ``saga_outcome`` at the end."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from kafka_clients import read_aiokafka, records_in, run

from sagascope.instrumentation import (
    ContractError,
    InstrumentedProducer,
    handling,
    saga_handler,
    saga_outcome,
    start_saga,
)
from sagascope.instrumentation import contract as c
from sagascope.testing import consumer_record, contract_violations
from sagascope.testing import header_value as header

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _handled(saga_id: str = "order-9") -> Any:
    """A command of ``saga_id`` as an orchestrator's consumer hands it over."""
    headers = {
        c.TRACEPARENT: f"00-{TRACE}-00f067aa0ba902b7-01", c.CE_SPECVERSION: "1.0",
        c.CE_ID: "msg-1", c.CE_SOURCE: "payment", c.CE_TYPE: "PaymentRefunded",
        c.CE_TIME: "2026-01-01T00:00:00.000Z", c.CE_SAGAID: saga_id, c.CE_SAGATYPE: "order",
        c.CE_KIND: "event",
    }
    return consumer_record("orders", b"{}", headers=[(k, v.encode()) for k, v in headers.items()])


def test_mark_outcome_sends_a_contract_marker_of_the_named_saga(
    kafka_producer, make_topic, read_records
):
    outcomes = make_topic("outcomes")
    producer = InstrumentedProducer(kafka_producer, service="orders", outcome_topic=outcomes)
    producer.mark_outcome("compensated", saga_id="order-7", saga_type="order")
    producer.flush()
    (record,) = read_records(outcomes, 1)
    assert contract_violations(record.headers) == []
    assert header(record, c.CE_TYPE) == "SagaCompensated"
    assert header(record, c.CE_SAGASTATUS) == "compensated"
    assert header(record, c.CE_KIND) == "event"
    assert header(record, c.CE_SAGAID) == header(record, c.CE_CORRELATIONID) == "order-7"
    assert header(record, c.CE_SOURCE) == "orders"
    assert record.key == b"order-7"
    assert json.loads(record.value) == {"saga_id": "order-7", "status": "compensated",
                                        "saga_type": "order"}


def test_mark_outcome_needs_a_saga(kafka_producer):
    producer = InstrumentedProducer(kafka_producer, service="orders")
    with pytest.raises(ContractError, match="saga_id"):
        producer.mark_outcome("completed")
    with pytest.raises(ContractError, match="saga status"):
        producer.mark_outcome("done", saga_id="order-1")


def test_an_outcome_no_send_carried_is_sent_when_the_handler_returns(
    kafka_producer, make_topic, read_records, caplog
):
    outcomes = make_topic("outcomes")
    producer = InstrumentedProducer(kafka_producer, service="orders", outcome_topic=outcomes)

    @saga_handler("orders")
    def on_refunded(record: Any) -> None:
        saga_outcome("compensated")  # and nothing sent after

    with caplog.at_level(logging.WARNING, logger="sagascope"):
        on_refunded(_handled())
    assert caplog.records == []  # kafka-python's future is awaitable, yet nothing is left to drive
    producer.flush()
    (marker,) = read_records(outcomes, 1)
    assert header(marker, c.CE_SAGASTATUS) == "compensated"
    assert header(marker, c.CE_SAGAID) == "order-9"
    assert header(marker, c.CE_SAGATYPE) == "order"
    assert header(marker, c.CE_CAUSATIONID) == "msg-1"
    assert c.parse_traceparent(header(marker, c.TRACEPARENT)).trace_id == TRACE


def test_an_outcome_a_send_carried_sends_no_marker(
    kafka_producer, make_topic, read_records, bootstrap_servers
):
    outcomes, events = make_topic("outcomes"), make_topic("events")
    producer = InstrumentedProducer(kafka_producer, service="orders", outcome_topic=outcomes)
    with handling(_handled(), service="orders"):
        saga_outcome("completed")
        producer.send(events, {"type": "OrderConfirmed"})
    producer.flush()
    (sent,) = read_records(events, 1)
    assert header(sent, c.CE_SAGASTATUS) == "completed"
    assert records_in(bootstrap_servers, outcomes) == 0


def test_a_handler_that_raises_sends_no_marker(kafka_producer, make_topic, bootstrap_servers):
    outcomes = make_topic("outcomes")
    producer = InstrumentedProducer(kafka_producer, service="orders", outcome_topic=outcomes)
    with pytest.raises(RuntimeError), handling(_handled(), service="orders"):
        saga_outcome("failed")
        raise RuntimeError("crashed before the end")
    producer.flush()
    assert records_in(bootstrap_servers, outcomes) == 0


def test_a_start_saga_block_sends_its_outcome_at_the_end(kafka_producer, make_topic, read_records):
    outcomes = make_topic("outcomes")
    producer = InstrumentedProducer(kafka_producer, service="orders", outcome_topic=outcomes)
    with start_saga("order", "order-11"):
        saga_outcome("failed")
    producer.flush()
    (marker,) = read_records(outcomes, 1)
    assert (header(marker, c.CE_TYPE), header(marker, c.CE_SAGAID)) == ("SagaFailed", "order-11")


@pytest.mark.parametrize("form", ["async handler", "async with", "with in a coroutine"])
def test_aiokafka_markers_reach_the_broker(form, bootstrap_servers, make_topic):
    from aiokafka import AIOKafkaProducer

    outcomes = make_topic("outcomes")

    async def orchestrator() -> None:
        client = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
        await client.start()
        producer = InstrumentedProducer(client, service="orders", outcome_topic=outcomes)
        try:
            if form == "async handler":
                @saga_handler("orders")
                async def on_refunded(record: Any) -> None:
                    saga_outcome("compensated")

                await on_refunded(_handled())
            elif form == "async with":
                async with handling(_handled(), service="orders"):
                    saga_outcome("compensated")
            else:
                with handling(_handled(), service="orders"):
                    saga_outcome("compensated")
            # What the last form left to the loop is sent once read back below.
            (marker,) = await read_aiokafka(bootstrap_servers, outcomes, 1)
            assert dict(marker.headers)[c.CE_SAGASTATUS] == b"compensated"
        finally:
            await producer.close()

    run(orchestrator())
