"""Span export: the span wire format of docs/internals.md, written to the telemetry topic."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from sagascope.embedded import free_port
from sagascope.instrumentation import (
    SPAN_RECORD_TYPE,
    InstrumentedProducer,
    KafkaSpanExporter,
    configure_tracing,
    saga_handler,
    span_to_dict,
    start_saga,
)
from sagascope.instrumentation import contract as c
from sagascope.testing import consumer_record
from sagascope.testing import header_value as header

WIRE_KEYS = {
    "trace_id", "span_id", "parent_span_id", "name", "kind", "service",
    "start_time_unix_nano", "end_time_unix_nano", "status_code", "status_message",
    "saga_id", "saga_type", "message_id", "attributes", "links", "events",
}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"


def _failing_handler_spans(spans):
    @saga_handler("payment", consumer_group="g", tracer_provider=spans.tracer_provider)
    def handle(record):
        raise ValueError("card declined")

    headers = [(c.TRACEPARENT, f"00-{TRACE}-{PRODUCER_SPAN}-01".encode()),
               (c.CE_ID, b"m-1"), (c.CE_SAGAID, b"o-1"), (c.CE_SAGATYPE, b"order")]
    with pytest.raises(ValueError):
        handle(consumer_record("payments", b"{}", b"o-1", headers, offset=5))
    return spans.finished(kind="CONSUMER")


def test_span_to_dict_follows_the_wire_format(spans):
    (span,) = _failing_handler_spans(spans)
    record = span_to_dict(span)
    assert set(record) == WIRE_KEYS
    assert record["trace_id"] == TRACE
    assert len(record["span_id"]) == 16
    assert record["parent_span_id"] == PRODUCER_SPAN
    assert record["kind"] == "CONSUMER"
    assert record["service"] == "payment"
    assert record["status_code"] == "ERROR"
    assert "card declined" in record["status_message"]
    assert (record["saga_id"], record["saga_type"], record["message_id"]) == ("o-1", "order", "m-1")
    assert record["links"] == [{"trace_id": TRACE, "span_id": PRODUCER_SPAN}]
    assert record["events"][0]["name"] == "exception"
    assert record["events"][0]["attributes"]["exception.type"] == "ValueError"
    assert all(isinstance(v, str) for v in record["attributes"].values())
    assert record["attributes"]["messaging.kafka.offset"] == "5"
    assert 0 < record["start_time_unix_nano"] <= record["end_time_unix_nano"]
    json.dumps(record)


def test_exporter_writes_one_record_per_span_keyed_by_trace_id(
    spans, kafka_producer, make_topic, read_records
):
    topic = make_topic("spans")
    finished = _failing_handler_spans(spans)
    exporter = KafkaSpanExporter(kafka_producer, topic)
    assert exporter.export(finished) is SpanExportResult.SUCCESS
    assert exporter.force_flush()
    (record,) = read_records(topic, 1)
    assert record.key == TRACE.encode()
    assert header(record, c.CE_TYPE) == SPAN_RECORD_TYPE
    assert json.loads(record.value) == span_to_dict(finished[0])


def test_exporter_unwraps_an_instrumented_producer(spans, kafka_producer, make_topic, read_records):
    topic = make_topic("spans")
    exporter = KafkaSpanExporter(InstrumentedProducer(kafka_producer, service="svc"), topic)
    exporter.export(_failing_handler_spans(spans))
    exporter.force_flush()
    (record,) = read_records(topic, 1)
    assert [k for k, _ in record.headers] == [c.CE_TYPE]


def test_an_unreachable_broker_fails_the_export_and_the_service_goes_on(spans, caplog):
    exporter = KafkaSpanExporter(f"127.0.0.1:{free_port()}", "_sagascope.spans", max_block_ms=500)
    with caplog.at_level(logging.WARNING):
        result = exporter.export(_failing_handler_spans(spans))
    assert result is SpanExportResult.FAILURE
    assert exporter.failures == 1
    assert "span export" in caplog.text
    exporter.shutdown()


def test_configure_tracing_ships_handler_and_producer_spans_to_kafka(
    bootstrap_servers, kafka_producer, make_topic, read_records
):
    spans_topic = make_topic("spans")
    out_topic = make_topic()
    provider = configure_tracing("payment", bootstrap_servers, spans_topic, set_global=False)
    producer = InstrumentedProducer(kafka_producer, service="payment", tracer_provider=provider)

    @saga_handler("payment", tracer_provider=provider)
    def handle(record):
        producer.send(out_topic, b"{}", type="PaymentReceived")

    with start_saga("order", "o-2", tracer_provider=provider):
        pass
    handle(consumer_record("payments", b"{}", headers=[
        (c.TRACEPARENT, f"00-{TRACE}-{PRODUCER_SPAN}-01".encode()), (c.CE_SAGAID, b"o-2")]))
    producer.flush()
    provider.shutdown()
    records = [json.loads(r.value) for r in read_records(spans_topic, 3)]
    assert sorted(r["kind"] for r in records) == ["CONSUMER", "INTERNAL", "PRODUCER"]
    assert {r["service"] for r in records} == {"payment"}
    assert {r["saga_id"] for r in records} == {"o-2"}


def test_configure_tracing_keeps_standard_exporters_possible(bootstrap_servers, make_topic):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    other = InMemorySpanExporter()  # stands in for OTLPSpanExporter(): any SpanExporter
    provider = configure_tracing("payment", bootstrap_servers, make_topic("spans"),
                                 extra_exporters=[other], set_global=False)
    with start_saga("order", tracer_provider=provider):
        pass
    provider.shutdown()
    assert [s.name for s in other.get_finished_spans()] == ["saga order"]


def test_producer_config_reaches_the_exporters_own_producer(
    spans, bootstrap_servers, make_topic, read_records
):
    topic = make_topic("spans")
    plain = KafkaSpanExporter(bootstrap_servers, topic,
                              producer_config={"client_id": "payment-spans", "linger_ms": 0})
    assert plain.export(_failing_handler_spans(spans)) is SpanExportResult.SUCCESS
    plain.shutdown()
    assert json.loads(read_records(topic, 1)[0].value)["saga_id"] == "o-1"
    # A span record is far over 100 bytes: the export fails, so the setting reached the producer.
    tiny = KafkaSpanExporter(bootstrap_servers, topic, producer_config={"max_request_size": 100})
    batch = _failing_handler_spans(spans)
    assert tiny.export(batch) is SpanExportResult.FAILURE
    assert tiny.failures == len(batch)
    tiny.shutdown()


def test_configure_tracing_passes_producer_config_through(bootstrap_servers, make_topic, caplog):
    provider = configure_tracing(
        "payment", bootstrap_servers, make_topic("spans"), set_global=False,
        producer_config={"max_request_size": 100},
    )
    with start_saga("order", tracer_provider=provider):
        pass
    with caplog.at_level(logging.WARNING):
        provider.force_flush()
    provider.shutdown()
    assert "span export" in caplog.text


def test_producer_config_beside_a_shared_producer_is_refused(kafka_producer):
    with pytest.raises(TypeError, match="producer_config"):
        KafkaSpanExporter(kafka_producer, producer_config={"security_protocol": "SSL"})
