"""The saga_handler decorator: CONSUMER span linked to the producer, saga context, robustness."""

from __future__ import annotations

import asyncio
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from span_checks import errored_consumer_span

from sagascope.instrumentation import (
    InstrumentedProducer,
    current_saga,
    saga_handler,
    start_saga,
)
from sagascope.instrumentation import contract as c
from sagascope.testing import consumer_record
from sagascope.testing import header_value as header

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"


def contract_headers(**overrides: str) -> list[tuple[str, bytes]]:
    values = {
        c.TRACEPARENT: f"00-{TRACE}-{PRODUCER_SPAN}-01",
        c.CE_SPECVERSION: "1.0",
        c.CE_ID: "msg-1",
        c.CE_SOURCE: "orders",
        c.CE_TYPE: "RetrievePayment",
        c.CE_TIME: "2026-01-01T00:00:00.000Z",
        c.CE_SAGAID: "order-9",
        c.CE_SAGATYPE: "order-fulfillment",
        c.CE_KIND: "command",
        **overrides,
    }
    return [(k, v.encode()) for k, v in values.items()]


def test_consumer_span_is_linked_to_the_producer_span_and_continues_its_trace(spans):
    @saga_handler("payment", consumer_group="payments-g", tracer_provider=spans.tracer_provider)
    def handle(record):
        return "ok"

    record = consumer_record("payments", b"{}", b"order-9", contract_headers(),
                             partition=2, offset=41)
    assert handle(record) == "ok"
    (span,) = spans.finished(kind="CONSUMER")
    assert [(f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}")
            for link in span.links] == [(TRACE, PRODUCER_SPAN)]
    assert f"{span.context.trace_id:032x}" == TRACE
    assert span.name == "payments process"
    attrs = span.attributes
    assert attrs["messaging.kafka.message.key"] == "order-9"
    assert attrs["messaging.kafka.offset"] == 41
    assert attrs["messaging.destination.partition.id"] == "2"
    assert attrs["messaging.consumer.group.name"] == "payments-g"
    assert attrs["messaging.message.id"] == "msg-1"
    assert attrs["sagascope.saga.id"] == "order-9"
    assert attrs["sagascope.service"] == "payment"


def test_the_handler_sees_the_saga_and_restores_the_outer_context(spans):
    seen = []

    @saga_handler("payment", tracer_provider=spans.tracer_provider)
    def handle(record):
        seen.append(current_saga())

    handle(consumer_record("payments", b"{}", headers=contract_headers()))
    (saga,) = seen
    assert (saga.saga_id, saga.saga_type, saga.trace_id, saga.causation_id) == (
        "order-9", "order-fulfillment", TRACE, "msg-1")
    assert current_saga() is None


def test_sends_inside_the_handler_carry_saga_trace_and_causation(
    kafka_producer, make_topic, read_records, spans
):
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="payment", tracer_provider=spans.tracer_provider)

    @saga_handler("payment", tracer_provider=spans.tracer_provider)
    def handle(record):
        producer.send(topic, {"paid": True}, type="PaymentReceived")

    handle(consumer_record("payments", b"{}", headers=contract_headers()))
    producer.flush()
    out = read_records(topic, 1)[0]
    assert header(out, c.CE_SAGAID) == "order-9"
    assert header(out, c.CE_SAGATYPE) == "order-fulfillment"
    assert header(out, c.CE_CAUSATIONID) == "msg-1"
    tp = c.parse_traceparent(header(out, c.TRACEPARENT))
    (consumer,) = spans.finished(kind="CONSUMER")
    (producer_span,) = spans.finished(kind="PRODUCER")
    assert tp.trace_id == TRACE
    assert producer_span.parent.span_id == consumer.context.span_id


def test_exceptions_are_recorded_and_reraised_unchanged(spans):
    error = KeyError("missing")

    @saga_handler("payment", tracer_provider=spans.tracer_provider)
    def handle(record):
        raise error

    with pytest.raises(KeyError) as caught:
        handle(consumer_record("payments", b"{}", headers=contract_headers()))
    assert caught.value is error
    errored_consumer_span(spans)
    assert current_saga() is None


def test_async_handlers_are_traced_too(spans):
    @saga_handler("payment", tracer_provider=spans.tracer_provider)
    async def handle(record):
        await asyncio.sleep(0)
        return current_saga().saga_id

    assert asyncio.run(handle(consumer_record("p", b"{}", headers=contract_headers()))) == "order-9"
    assert len(spans.finished(kind="CONSUMER")) == 1


def test_methods_can_be_handlers(spans):
    class Service:
        @saga_handler("payment", tracer_provider=spans.tracer_provider)
        def handle(self, record):
            return current_saga().saga_id

    assert Service().handle(consumer_record("p", b"{}", headers=contract_headers())) == "order-9"


def test_a_malformed_traceparent_is_logged_and_the_handler_runs(spans, caplog):
    @saga_handler("payment", tracer_provider=spans.tracer_provider)
    def handle(record):
        return current_saga()

    record = consumer_record("p", b"{}", headers=contract_headers(traceparent="00-zz-bad-01"))
    with caplog.at_level(logging.WARNING):
        saga = handle(record)
    assert "malformed traceparent" in caplog.text
    assert saga.saga_id == "order-9"
    (span,) = spans.finished(kind="CONSUMER")
    assert span.links == () or list(span.links) == []
    assert f"{span.context.trace_id:032x}" != TRACE


def test_invalid_utf8_headers_are_logged_and_the_handler_runs(spans, caplog):
    @saga_handler("payment", tracer_provider=spans.tracer_provider)
    def handle(record):
        return "ran"

    headers = [*contract_headers(), ("ce_step", b"\xff\xfe")]
    with caplog.at_level(logging.WARNING):
        assert handle(consumer_record("p", b"{}", headers=headers)) == "ran"
    assert "not valid UTF-8" in caplog.text


def test_a_record_without_headers_starts_a_new_trace(spans):
    @saga_handler("payment", tracer_provider=spans.tracer_provider)
    def handle(record):
        return current_saga()

    saga = handle(consumer_record("p", b"{}"))
    assert saga.saga_id == "" and saga.causation_id is None
    assert len(saga.trace_id) == 32


class _BrokenTracer:
    def start_span(self, *args, **kwargs):
        raise RuntimeError("tracing is broken")


class _BrokenTracerProvider(TracerProvider):
    def __init__(self, broken_at: str) -> None:
        super().__init__()
        self.broken_at = broken_at

    def get_tracer(self, *args, **kwargs):
        if self.broken_at == "get_tracer":
            raise RuntimeError("tracing is broken")
        return _BrokenTracer()


@pytest.mark.parametrize("broken_at", ["get_tracer", "start_span"])
def test_a_broken_tracer_never_breaks_the_handler(caplog, broken_at):
    @saga_handler("payment", tracer_provider=_BrokenTracerProvider(broken_at))
    def handle(record):
        return "ran"

    with caplog.at_level(logging.ERROR):
        assert handle(consumer_record("p", b"{}", headers=contract_headers())) == "ran"
    assert "running the handler anyway" in caplog.text
    assert current_saga() is None


def test_without_an_sdk_the_handler_still_propagates_the_trace(
    kafka_producer, make_topic, read_records
):
    from opentelemetry.trace import NoOpTracerProvider

    provider = NoOpTracerProvider()
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="payment", tracer_provider=provider)

    @saga_handler("payment", tracer_provider=provider)
    def handle(record):
        producer.send(topic, b"x", type="PaymentReceived")

    handle(consumer_record("p", b"{}", headers=contract_headers()))
    producer.flush()
    tp = c.parse_traceparent(header(read_records(topic, 1)[0], c.TRACEPARENT))
    assert tp.trace_id == TRACE
    assert tp.span_id != PRODUCER_SPAN


def test_start_saga_inside_a_handler_starts_a_new_trace_caused_by_the_record(spans):
    @saga_handler("orders", tracer_provider=spans.tracer_provider)
    def handle(record):
        with start_saga("shipping", "ship-1", tracer_provider=spans.tracer_provider) as saga:
            return saga

    saga = handle(consumer_record("p", b"{}", headers=contract_headers()))
    assert saga.trace_id != TRACE
    assert saga.causation_id == "msg-1"
    (root,) = spans.finished(kind="INTERNAL")
    (consumer,) = spans.finished(kind="CONSUMER")
    assert [link.context.span_id for link in root.links] == [consumer.context.span_id]


def test_baggage_from_the_record_is_current_in_the_handler(spans):
    from opentelemetry import baggage

    @saga_handler("payment", tracer_provider=spans.tracer_provider)
    def handle(record):
        return baggage.get_baggage("tenant")

    headers = [*contract_headers(), ("baggage", b"tenant=acme")]
    assert handle(consumer_record("p", b"{}", headers=headers)) == "acme"
    (span,) = spans.finished(kind="CONSUMER")
    assert f"{span.context.trace_id:032x}" == TRACE
