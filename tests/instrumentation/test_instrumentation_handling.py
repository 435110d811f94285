"""``with handling(record)``: the decorator's span and saga for a hand-written consumer loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from kafka_clients import read_aiokafka, read_confluent, run
from span_checks import errored_consumer_span

from sagascope.instrumentation import (
    InstrumentedProducer,
    current_saga,
    handling,
    saga_handler,
    start_saga,
)
from sagascope.instrumentation import contract as c
from sagascope.testing import consumer_record


def _one_record(client: str, kafka_producer: Any, make_topic: Any, read_records: Any,
                bootstrap_servers: str) -> Any:
    """A record sent in a saga, read back with ``client``'s consumer."""
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders")
    with start_saga("order", "order-5"):
        producer.send(topic, {"order": 5}, key="order-5", type="ReservePayment", kind="command")
    producer.flush()
    if client == "kafka-python":
        return read_records(topic, 1)[0]
    if client == "confluent-kafka":
        return read_confluent(bootstrap_servers, topic, 1)[0]
    return run(read_aiokafka(bootstrap_servers, topic, 1))[0]


def _comparable(span: Any) -> tuple[Any, ...]:
    return (
        span.name, span.kind, dict(span.attributes), span.parent.span_id,
        [(link.context.trace_id, link.context.span_id) for link in span.links],
        span.context.trace_id,
    )


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka", "aiokafka"])
def test_handling_gives_the_span_and_saga_the_decorator_gives(
    client, kafka_producer, make_topic, read_records, bootstrap_servers, spans
):
    record = _one_record(client, kafka_producer, make_topic, read_records, bootstrap_servers)
    provider = spans.tracer_provider
    seen = []

    @saga_handler("payment", consumer_group="pay", tracer_provider=provider)
    def decorated(record: Any) -> None:
        seen.append(current_saga())

    decorated(record)
    with handling(record, service="payment", consumer_group="pay",
                  tracer_provider=provider) as saga:
        seen.append(current_saga())
        assert saga is current_saga()
    assert current_saga() is None

    by_decorator, by_handling = spans.finished(kind="CONSUMER")
    assert _comparable(by_handling) == _comparable(by_decorator)
    assert by_handling.attributes["sagascope.saga.id"] == "order-5"
    first, second = seen
    assert (second.saga_id, second.saga_type, second.trace_id, second.causation_id) == (
        first.saga_id, first.saga_type, first.trace_id, first.causation_id)
    assert second.causation_id and second.saga_id == "order-5"


def test_handling_records_an_exception_and_reraises_it(spans):
    error = KeyError("missing")
    record = consumer_record("payments", b"{}", headers=[(c.CE_SAGAID, b"order-9")])
    with pytest.raises(KeyError) as caught, handling(record, tracer_provider=spans.tracer_provider):
        raise error
    assert caught.value is error
    errored_consumer_span(spans)
    assert current_saga() is None


def test_handling_without_a_service_leaves_the_service_to_the_provider(spans):
    record = consumer_record("payments", b"{}", headers=[(c.CE_SAGAID, b"order-9")])
    with handling(record, tracer_provider=spans.tracer_provider):
        pass
    (span,) = spans.finished(kind="CONSUMER")
    assert "sagascope.service" not in span.attributes
    assert span.resource.attributes["service.name"] == "test"


def test_handling_something_that_is_not_a_record_runs_the_block_untraced(spans, caplog):
    ran = []
    with caplog.at_level(logging.WARNING), handling({"not": "a record"},
                                                    tracer_provider=spans.tracer_provider) as saga:
        ran.append(saga)
    assert ran == [None]
    assert "not a consumed record" in caplog.text
    assert spans.finished() == []


def test_async_with_handling_makes_the_saga_current_in_a_coroutine(spans):
    record = consumer_record("payments", b"{}", headers=[(c.CE_SAGAID, b"order-9")])

    async def loop() -> str:
        async with handling(record, tracer_provider=spans.tracer_provider):
            await asyncio.sleep(0)
            saga = current_saga()
            assert saga is not None
            return saga.saga_id

    assert asyncio.run(loop()) == "order-9"
    assert len(spans.finished(kind="CONSUMER")) == 1
