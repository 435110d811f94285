"""One InstrumentedProducer and one saga_handler over confluent-kafka and aiokafka, on the real broker."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kafka_clients import confluent_producer, read_aiokafka, read_confluent, run
from span_checks import errored_consumer_span

from sagascope.instrumentation import (
    ContractError,
    InstrumentedProducer,
    current_saga,
    saga_handler,
    start_saga,
)
from sagascope.instrumentation import contract as c
from sagascope.testing import contract_violations


def header_of(headers, key: str) -> str | None:
    values = [v.decode() for k, v in headers or () if k == key]
    return values[-1] if values else None


def test_importing_the_instrumentation_and_using_kafka_python_loads_neither_other_client():
    probe = (
        "import sys\n"
        "from kafka import KafkaProducer\n"
        "import sagascope.instrumentation as si\n"
        "from sagascope.testing import consumer_record\n"
        "p = si.InstrumentedProducer(KafkaProducer(bootstrap_servers='127.0.0.1:1',"
        " api_version=(2, 5)), service='svc')\n"
        "si.saga_handler('svc')(lambda record: None)(consumer_record('t', b'{}'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('confluent_kafka', 'aiokafka')))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_confluent_producer_writes_the_contract_and_keeps_repeated_headers(
    bootstrap_servers, make_topic
):
    topic = make_topic()
    producer = InstrumentedProducer(confluent_producer(bootstrap_servers), service="orders")
    delivered = []
    with start_saga("order-fulfillment", "order-7") as saga:
        returned = producer.send(
            topic, {"order": 7}, "order-7", type="OrderPlaced", kind="event",
            headers=[("x-tag", b"a"), ("x-tag", b"b")],
            on_delivery=lambda err, msg: delivered.append((err, msg.offset())),
        )
    assert returned is None  # what confluent-kafka's produce returns
    assert producer.flush(10) == 0
    assert delivered == [(None, 0)]
    (message,) = read_confluent(bootstrap_servers, topic, 1)
    headers = message.headers()
    assert contract_violations(headers) == []
    assert [v for k, v in headers if k == "x-tag"] == [b"a", b"b"]
    assert header_of(headers, c.CE_SAGAID) == "order-7"
    assert c.parse_traceparent(header_of(headers, c.TRACEPARENT)).trace_id == saga.trace_id
    assert message.key() == b"order-7"
    assert message.value() == b'{"order":7}'


def test_aiokafka_send_is_a_coroutine_that_writes_the_contract(bootstrap_servers, make_topic):
    from aiokafka import AIOKafkaProducer

    topic = make_topic()

    async def scenario():
        client = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
        await client.start()
        producer = InstrumentedProducer(client, service="payment")
        try:
            with start_saga("order-fulfillment", "order-8") as saga:
                delivery = await producer.send(topic, "paid", b"order-8", type="PaymentReceived",
                                               headers=[("x-tag", b"a"), ("x-tag", b"b")])
            metadata = await delivery
            await producer.flush()
        finally:
            await producer.close()
        records = await read_aiokafka(bootstrap_servers, topic, 1)
        return saga, metadata, records

    saga, metadata, (record,) = run(scenario())
    assert (metadata.topic, metadata.offset) == (topic, 0)
    assert contract_violations(record.headers) == []
    assert [v for k, v in record.headers if k == "x-tag"] == [b"a", b"b"]
    assert c.parse_traceparent(header_of(record.headers, c.TRACEPARENT)).trace_id == saga.trace_id
    assert record.value == b"paid"


def test_handler_takes_a_confluent_message_links_its_span_and_carries_the_saga(
    bootstrap_servers, make_topic, spans
):
    topic = make_topic()
    producer = InstrumentedProducer(confluent_producer(bootstrap_servers), service="orders",
                                    tracer_provider=spans.tracer_provider)
    with start_saga("order-fulfillment", "order-9", tracer_provider=spans.tracer_provider):
        producer.send(topic, b"{}", b"order-9", type="RetrievePayment", kind="command")
    producer.flush(10)
    (message,) = read_confluent(bootstrap_servers, topic, 1)
    seen = []

    @saga_handler("payment", consumer_group="payments", tracer_provider=spans.tracer_provider)
    def handle(msg):
        seen.append(current_saga())
        return "done"

    assert handle(message) == "done"
    (sent,) = spans.finished(kind="PRODUCER")
    (span,) = spans.finished(kind="CONSUMER")
    assert [link.context.span_id for link in span.links] == [sent.context.span_id]
    assert span.context.trace_id == sent.context.trace_id
    assert span.attributes["messaging.kafka.message.key"] == "order-9"
    assert span.attributes["messaging.kafka.offset"] == 0
    assert span.attributes["messaging.destination.partition.id"] == "0"
    assert span.attributes["messaging.consumer.group.name"] == "payments"
    assert (seen[0].saga_id, seen[0].causation_id) == ("order-9", header_of(
        message.headers(), c.CE_ID))


def test_handler_takes_a_confluent_message_without_headers(bootstrap_servers, make_topic, spans):
    topic = make_topic()
    client = confluent_producer(bootstrap_servers)
    client.produce(topic, b"legacy", key=b"k")
    client.flush(10)
    (message,) = read_confluent(bootstrap_servers, topic, 1)
    assert message.headers() is None

    @saga_handler("payment", tracer_provider=spans.tracer_provider)
    def handle(msg):
        return current_saga().saga_id

    assert handle(message) == ""
    (span,) = spans.finished(kind="CONSUMER")
    assert span.links == () or list(span.links) == []
    assert span.attributes["messaging.destination.name"] == topic


def test_async_handler_takes_an_aiokafka_record_and_reraises_unchanged(
    bootstrap_servers, make_topic, spans
):
    from aiokafka import AIOKafkaProducer

    topic = make_topic()

    class Declined(Exception):
        pass

    raised = Declined("card declined")

    @saga_handler("payment", tracer_provider=spans.tracer_provider)
    async def handle(record):
        assert current_saga().saga_id == "order-10"
        raise raised

    async def scenario():
        client = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
        await client.start()
        producer = InstrumentedProducer(client, service="orders", tracer_provider=spans.tracer_provider)
        with start_saga("order-fulfillment", "order-10", tracer_provider=spans.tracer_provider):
            await (await producer.send(topic, b"{}", b"order-10", type="ChargeCard",
                                       kind="command"))
        await producer.close()
        (record,) = await read_aiokafka(bootstrap_servers, topic, 1)
        with pytest.raises(Declined) as caught:
            await handle(record)
        return caught.value

    assert run(scenario()) is raised
    (sent,) = spans.finished(kind="PRODUCER")
    span = errored_consumer_span(spans)
    assert [link.context.span_id for link in span.links] == [sent.context.span_id]
    assert span.attributes["messaging.kafka.message.key"] == "order-10"


def test_stock_confluent_instrumentation_is_read_by_the_handler(bootstrap_servers, make_topic, spans):
    from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor

    topic = make_topic()
    stock = ConfluentKafkaInstrumentor.instrument_producer(
        confluent_producer(bootstrap_servers), tracer_provider=spans.tracer_provider
    )
    stock.produce(topic, b"{}", key=b"legacy-1")
    stock.flush(10)
    (message,) = read_confluent(bootstrap_servers, topic, 1)
    assert header_of(message.headers(), c.CE_ID) is None  # the stock one writes no saga headers

    @saga_handler("payment", tracer_provider=spans.tracer_provider)
    def handle(msg):
        return current_saga().trace_id

    trace_id = handle(message)
    (sent,) = spans.finished(kind="PRODUCER")
    (span,) = spans.finished(kind="CONSUMER")
    assert [link.context.span_id for link in span.links] == [sent.context.span_id]
    assert trace_id == f"{sent.context.trace_id:032x}"


def test_stock_aiokafka_instrumentation_is_read_by_the_handler(bootstrap_servers, make_topic, spans):
    from aiokafka import AIOKafkaProducer
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

    topic = make_topic()
    instrumentor = AIOKafkaInstrumentor()

    @saga_handler("payment", tracer_provider=spans.tracer_provider)
    async def handle(record):
        return current_saga().trace_id

    async def scenario():
        client = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
        await client.start()
        await (await client.send(topic, b"{}", key=b"legacy-2"))
        await client.stop()
        (record,) = await read_aiokafka(bootstrap_servers, topic, 1)
        return await handle(record)

    instrumentor.instrument(tracer_provider=spans.tracer_provider)
    try:
        trace_id = run(scenario())
    finally:
        instrumentor.uninstrument()
    (sent,) = spans.finished(kind="PRODUCER")
    (span,) = [s for s in spans.finished(kind="CONSUMER") if s.name.endswith(" process")
               and s.instrumentation_scope.name == "sagascope.instrumentation"]
    assert [link.context.span_id for link in span.links] == [sent.context.span_id]
    assert trace_id == f"{sent.context.trace_id:032x}"


def test_over_a_stock_confluent_proxy_one_traceparent_is_written_ours(
    bootstrap_servers, make_topic, spans
):
    from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor

    topic = make_topic()
    proxy = ConfluentKafkaInstrumentor.instrument_producer(
        confluent_producer(bootstrap_servers), tracer_provider=spans.tracer_provider
    )
    producer = InstrumentedProducer(proxy, service="orders", tracer_provider=spans.tracer_provider)
    tracer = spans.tracer_provider.get_tracer("app")
    with start_saga("order-fulfillment", "order-11", tracer_provider=spans.tracer_provider), \
            tracer.start_as_current_span("request") as request:
        producer.send(topic, b"{}", type="OrderPlaced")
    producer.flush(10)
    (message,) = read_confluent(bootstrap_servers, topic, 1)
    assert producer.client.value == "confluent-kafka"
    headers = message.headers()
    assert [k for k, _ in headers].count(c.TRACEPARENT) == 1
    assert contract_violations(headers) == []
    assert header_of(headers, c.CE_SAGAID) == "order-11"
    # Ours: the PRODUCER span we recorded, a child of the span current at the send.
    (sent,) = spans.finished(kind="PRODUCER")
    assert sent.instrumentation_scope.name == "sagascope.instrumentation"
    assert sent.parent.span_id == request.get_span_context().span_id
    written = c.parse_traceparent(header_of(headers, c.TRACEPARENT))
    assert written.span_id == f"{sent.context.span_id:016x}"
    # What is sent past the wrapper still goes through the stock instrumentation.
    proxy.produce(topic, b"{}")
    proxy.flush(10)
    assert [s.instrumentation_scope.name for s in spans.finished(kind="PRODUCER")][1].startswith(
        "opentelemetry.instrumentation.confluent_kafka")


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka", "aiokafka"])
def test_under_the_stock_auto_instrumentation_one_traceparent_is_written_ours(
    bootstrap_servers, make_topic, read_records, spans, client
):
    topic = make_topic()
    if client == "kafka-python":
        from opentelemetry.instrumentation.kafka import KafkaInstrumentor as Instrumentor
    elif client == "confluent-kafka":
        from opentelemetry.instrumentation.confluent_kafka import (
            ConfluentKafkaInstrumentor as Instrumentor,
        )
    else:
        from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor as Instrumentor
    instrumentor = Instrumentor()
    instrumentor.instrument(tracer_provider=spans.tracer_provider)
    try:
        headers = _send_one_instrumented(client, bootstrap_servers, topic, spans, read_records)
    finally:
        instrumentor.uninstrument()
    assert [k for k, _ in headers].count(c.TRACEPARENT) == 1
    assert contract_violations(headers) == []
    (sent,) = spans.finished(kind="PRODUCER")
    assert sent.instrumentation_scope.name == "sagascope.instrumentation"
    written = c.parse_traceparent(header_of(headers, c.TRACEPARENT))
    assert written.span_id == f"{sent.context.span_id:016x}"


def _send_one_instrumented(client, bootstrap_servers, topic, spans, read_records):
    """One send through InstrumentedProducer over a producer made while instrumented."""
    provider = spans.tracer_provider
    if client == "aiokafka":
        from aiokafka import AIOKafkaProducer

        async def scenario():
            raw = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
            await raw.start()
            producer = InstrumentedProducer(raw, service="orders", tracer_provider=provider)
            with start_saga("order-fulfillment", "order-13", tracer_provider=provider):
                await (await producer.send(topic, b"{}", type="OrderPlaced"))
            await producer.close()
            (record,) = await read_aiokafka(bootstrap_servers, topic, 1)
            return record.headers

        return list(run(scenario()))
    if client == "confluent-kafka":
        import confluent_kafka

        raw = confluent_kafka.Producer({"bootstrap.servers": bootstrap_servers, "log_level": 3})
        assert type(raw).__module__.startswith("opentelemetry.instrumentation")
        producer = InstrumentedProducer(raw, service="orders", tracer_provider=provider)
        with start_saga("order-fulfillment", "order-13", tracer_provider=provider):
            producer.send(topic, b"{}", type="OrderPlaced")
        producer.flush(10)
        return read_confluent(bootstrap_servers, topic, 1)[0].headers()
    from kafka import KafkaProducer

    raw = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=1)
    producer = InstrumentedProducer(raw, service="orders", tracer_provider=provider)
    with start_saga("order-fulfillment", "order-13", tracer_provider=provider):
        producer.send(topic, b"{}", type="OrderPlaced")
    producer.close(5)
    return read_records(topic, 1)[0].headers


def test_aiokafka_send_and_wait_writes_the_contract_and_returns_the_record_metadata(
    bootstrap_servers, make_topic, spans
):
    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import RecordMetadata

    topic = make_topic()

    async def scenario():
        raw = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
        await raw.start()
        producer = InstrumentedProducer(raw, service="orders", tracer_provider=spans.tracer_provider)
        try:
            with start_saga("order-fulfillment", "order-14", tracer_provider=spans.tracer_provider):
                with pytest.raises(ContractError):
                    producer.send_and_wait(topic, b"{}", type="OrderPlaced", kind="gossip")
                metadata = await producer.send_and_wait(topic, b"{}", b"order-14",
                                                        type="OrderPlaced", step="placing")
        finally:
            await producer.close()
        (record,) = await read_aiokafka(bootstrap_servers, topic, 1)
        return metadata, record

    metadata, record = run(scenario())
    assert isinstance(metadata, RecordMetadata)
    assert (metadata.topic, metadata.partition, metadata.offset) == (topic, 0, 0)
    assert contract_violations(record.headers) == []
    assert header_of(record.headers, c.CE_SAGAID) == "order-14"
    assert header_of(record.headers, c.CE_STEP) == "placing"
    (sent,) = spans.finished(kind="PRODUCER")
    written = c.parse_traceparent(header_of(record.headers, c.TRACEPARENT))
    assert written.span_id == f"{sent.context.span_id:016x}"


def test_send_and_wait_names_the_call_to_use_with_the_other_clients(
    kafka_producer, bootstrap_servers
):
    with pytest.raises(TypeError, match=r"send\(\.\.\.\)\.get\(\)"):
        InstrumentedProducer(kafka_producer, service="orders").send_and_wait("t", b"{}", type="T")
    with pytest.raises(TypeError, match="flush"):
        InstrumentedProducer(confluent_producer(bootstrap_servers), service="orders").send_and_wait(
            "t", b"{}", type="T")
