"""Standard headers: the CloudEvents Correlation extension and OpenTelemetry's conversation id.

Records come from the CloudEvents Python SDK's own Kafka binding (``cloudevents``, binary
content mode), so what is read is what a CloudEvents producer in any language writes.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent
from collected import collecting
from kafka import KafkaProducer
from waiting import wait_until

from sagascope.instrumentation import InstrumentedProducer, current_saga, handling, start_saga
from sagascope.instrumentation import contract as c
from sagascope.testing import consumer_record
from sagascope.testing import header_value as header

CONVERSATION_ID = "messaging.message.conversation_id"


def _sdk_message() -> Any:
    """What the CloudEvents SDK writes for an event carrying only the correlation attributes."""
    event = CloudEvent(attributes={
        "id": "ev-1", "source": "/payment", "type": "PaymentRefunded", "specversion": "1.0",
        "correlationid": "order-42", "causationid": "ev-0",
    }, data={"order": "42"})
    return ce_kafka.to_binary_event(event)


def test_the_sdk_record_carries_only_the_standard_attributes():
    assert set(_sdk_message().headers) == {
        "ce_id", "ce_source", "ce_type", "ce_specversion", "ce_correlationid", "ce_causationid",
        "ce_time"}  # the SDK adds the time itself


@pytest.mark.slow
def test_the_collector_correlates_a_cloudevents_sdk_record_to_its_saga(
    bootstrap_servers, make_topic, store
):
    topic = make_topic("refunds")
    message = _sdk_message()
    raw = KafkaProducer(bootstrap_servers=bootstrap_servers)
    raw.send(topic, message.value, headers=list(message.headers.items())).get(10)
    raw.close(5)
    with collecting(store, bootstrap_servers, re.escape(topic)):
        row = wait_until(lambda: store.query(
            "SELECT saga_id, causation_id, message_id, type, source, correlation FROM messages "
            "WHERE topic = {t:String}", {"t": topic}).rows, 90, "the record stored")
    assert row == [("order-42", "ev-0", "ev-1", "PaymentRefunded", "/payment", "headers")]


def test_a_handler_joins_the_saga_a_cloudevents_sdk_record_names(
    kafka_producer, make_topic, read_records, spans
):
    message = _sdk_message()
    record = consumer_record("refunds", message.value, headers=list(message.headers.items()))
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders",
                                    tracer_provider=spans.tracer_provider)
    with handling(record, service="orders", tracer_provider=spans.tracer_provider):
        assert current_saga().saga_id == "order-42"
        producer.send(topic, {"type": "OrderCompensated"})
    producer.flush()
    (sent,) = read_records(topic, 1)
    assert header(sent, c.CE_SAGAID) == header(sent, c.CE_CORRELATIONID) == "order-42"
    assert header(sent, c.CE_CAUSATIONID) == "ev-1"
    (consumer,) = spans.finished(kind="CONSUMER")
    assert consumer.attributes[CONVERSATION_ID] == "order-42"


def test_producer_spans_carry_the_conversation_id(kafka_producer, make_topic, spans):
    producer = InstrumentedProducer(kafka_producer, service="orders",
                                    tracer_provider=spans.tracer_provider)
    with start_saga("order", "order-8", tracer_provider=spans.tracer_provider):
        producer.send(make_topic(), {"type": "OrderPlaced"})
    producer.flush()
    (span,) = spans.finished(kind="PRODUCER")
    assert span.attributes[CONVERSATION_ID] == "order-8"


def test_the_cloudevents_sdk_reads_our_saga_as_its_correlation(
    kafka_producer, make_topic, read_records
):
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders")
    handled = consumer_record("orders", b"{}", headers=[(c.CE_ID, b"m-1"), (c.CE_SAGAID, b"o-3")])
    with handling(handled):
        producer.send(topic, {"type": "PaymentRequested"})
    producer.flush()
    (record,) = read_records(topic, 1)
    event = ce_kafka.from_binary_event(ce_kafka.KafkaMessage(
        headers=dict(record.headers), key=record.key, value=record.value))
    attributes = event.get_attributes()
    assert (attributes["correlationid"], attributes["causationid"]) == ("o-3", "m-1")
    assert (attributes["type"], attributes["source"]) == ("PaymentRequested", "orders")
