"""Integration over the real broker: a three-hop saga, and interop with stock OpenTelemetry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from opentelemetry import trace
from waiting import collect, polled

from sagascope.instrumentation import (
    InstrumentedProducer,
    compensating,
    saga_handler,
    saga_outcome,
    start_saga,
)
from sagascope.instrumentation import contract as c
from sagascope.testing import contract_violations
from sagascope.testing import header_value as header


def consume(bootstrap_servers: str, topic: str, n: int, timeout_s: float = 20.0) -> list:
    """Poll n records of a one-partition topic the way a service's consumer loop does."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        records = collect(lambda: polled(consumer), n, timeout_s)
        assert len(records) == n, f"{topic}: {len(records)} of {n} records"
        return records
    finally:
        consumer.close()


def test_three_hop_saga_keeps_one_saga_one_trace_and_a_causation_chain(
    bootstrap_servers, kafka_producer, make_topic, spans
):
    commands, payments, done = make_topic("cmd"), make_topic("evt"), make_topic("done")
    tp = spans.tracer_provider
    orders = InstrumentedProducer(kafka_producer, service="orders", tracer_provider=tp)
    payment = InstrumentedProducer(kafka_producer, service="payment", tracer_provider=tp)

    @saga_handler("payment", consumer_group="payment", tracer_provider=tp)
    def on_retrieve_payment(record):
        payment.send(payments, {"paid": True}, key=record.key, type="PaymentReceived",
                     step="payment")

    @saga_handler("orders", consumer_group="orders", tracer_provider=tp)
    def on_payment_received(record):
        saga_outcome("completed")
        orders.send(done, {"done": True}, key=record.key, type="OrderCompleted", step="complete")

    with start_saga("order-fulfillment", "order-123", tracer_provider=tp) as saga:
        orders.send(commands, {"amount": 10}, key="order-123", type="RetrievePayment",
                    kind="command", step="payment")
    orders.flush()
    (command,) = consume(bootstrap_servers, commands, 1)
    on_retrieve_payment(command)
    payment.flush()
    (event,) = consume(bootstrap_servers, payments, 1)
    on_payment_received(event)
    orders.flush()
    (final,) = consume(bootstrap_servers, done, 1)

    hops = [command, event, final]
    for record in hops:
        assert contract_violations(record.headers) == [], record.topic
    assert {header(r, c.CE_SAGAID) for r in hops} == {"order-123"}
    assert {header(r, c.CE_SAGATYPE) for r in hops} == {"order-fulfillment"}
    parents = [c.parse_traceparent(header(r, c.TRACEPARENT)) for r in hops]
    assert {p.trace_id for p in parents} == {saga.trace_id}
    assert header(command, c.CE_CAUSATIONID) is None
    assert header(event, c.CE_CAUSATIONID) == header(command, c.CE_ID)
    assert header(final, c.CE_CAUSATIONID) == header(event, c.CE_ID)
    assert [header(r, c.CE_SOURCE) for r in hops] == ["orders", "payment", "orders"]
    assert [header(r, c.CE_KIND) for r in hops] == ["command", "event", "event"]
    assert header(final, c.CE_SAGASTATUS) == "completed"

    producer_spans = {f"{s.context.span_id:016x}": s for s in spans.finished(kind="PRODUCER")}
    assert set(producer_spans) == {p.span_id for p in parents}
    consumers = sorted(spans.finished(kind="CONSUMER"), key=lambda s: s.start_time)
    assert len(consumers) == 2
    for consumer_span, handled in zip(consumers, parents[:2], strict=True):
        assert [f"{link.context.span_id:016x}" for link in consumer_span.links] == [handled.span_id]
        assert f"{consumer_span.context.trace_id:032x}" == saga.trace_id
    # each hop's PRODUCER span is a child of the span that handled the message before it
    assert producer_spans[parents[1].span_id].parent.span_id == consumers[0].context.span_id
    assert producer_spans[parents[2].span_id].parent.span_id == consumers[1].context.span_id


def test_a_compensation_hop_carries_compensates_and_status(
    bootstrap_servers, kafka_producer, make_topic, spans
):
    failures, refunds = make_topic("fail"), make_topic("refund")
    orders = InstrumentedProducer(kafka_producer, service="orders")

    @saga_handler("orders")
    def on_shipping_failed(record):
        saga_outcome("compensating")
        with compensating("RetrievePayment"):
            orders.send(refunds, b"{}", type="RefundPayment", kind="command")

    with start_saga("order-fulfillment", "order-9"):
        orders.send(failures, b"{}", type="ShippingFailed", saga_status="failed")
    orders.flush()
    on_shipping_failed(consume(bootstrap_servers, failures, 1)[0])
    orders.flush()
    (refund,) = consume(bootstrap_servers, refunds, 1)
    assert contract_violations(refund.headers) == []
    assert header(refund, c.CE_COMPENSATES) == "RetrievePayment"
    assert header(refund, c.CE_SAGASTATUS) == "compensating"
    assert header(refund, c.CE_SAGAID) == "order-9"


@contextmanager
def stock_instrumentation(tracer_provider) -> Iterator[None]:
    """opentelemetry-instrumentation-kafka-python on every KafkaProducer/KafkaConsumer."""
    from opentelemetry.instrumentation.kafka import KafkaInstrumentor

    instrumentor = KafkaInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        yield
    finally:
        instrumentor.uninstrument()


def test_a_stock_instrumented_producer_is_read_by_our_handler(
    bootstrap_servers, make_topic, spans, kafka_producer
):
    legacy_topic, out_topic = make_topic("legacy"), make_topic("out")
    with stock_instrumentation(spans.tracer_provider):
        stock_producer = KafkaProducer(bootstrap_servers=bootstrap_servers)
        with spans.tracer_provider.get_tracer("legacy").start_as_current_span("legacy request"):
            stock_producer.send(legacy_topic, b'{"order": 5}', key=b"5")
        stock_producer.flush()
        stock_producer.close()
    (stock_send,) = spans.finished(kind="PRODUCER")

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    consumer.assign([TopicPartition(legacy_topic, 0)])
    consumer.seek_to_beginning()
    records = collect(lambda: polled(consumer), 1, 20)
    consumer.close()
    (record,) = records
    assert [k for k, _ in record.headers] == [c.TRACEPARENT]

    ours = InstrumentedProducer(kafka_producer, service="orders", tracer_provider=spans.tracer_provider)

    @saga_handler("orders", tracer_provider=spans.tracer_provider)
    def handle(rec):
        ours.send(out_topic, b"{}", type="OrderSeen")

    spans.clear()
    handle(record)
    ours.flush()
    (consumer_span,) = spans.finished(name=f"{legacy_topic} process")
    assert consumer_span.context.trace_id == stock_send.context.trace_id
    assert [link.context.span_id for link in consumer_span.links] == [stock_send.context.span_id]
    out = consume(bootstrap_servers, out_topic, 1)[0]
    assert c.parse_traceparent(header(out, c.TRACEPARENT)).trace_id == (
        f"{stock_send.context.trace_id:032x}")


def test_our_producer_is_read_by_a_stock_instrumented_consumer(
    bootstrap_servers, make_topic, spans, kafka_producer
):
    topic = make_topic("to-legacy")
    ours = InstrumentedProducer(kafka_producer, service="orders")
    with start_saga("order", "o-1") as saga:
        ours.send(topic, b"{}", type="OrderPlaced")
        sent_span = trace.get_current_span()
    ours.flush()
    with stock_instrumentation(spans.tracer_provider):
        consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                                 consumer_timeout_ms=10000)
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        record = next(consumer)  # the stock instrumentation wraps __next__
        consumer.close()
    (receive,) = spans.finished(kind="CONSUMER")
    tp = c.parse_traceparent(header(record, c.TRACEPARENT))
    assert f"{receive.context.trace_id:032x}" == saga.trace_id == tp.trace_id
    assert f"{receive.parent.span_id:016x}" == tp.span_id
    assert sent_span.get_span_context().trace_id == receive.context.trace_id
