"""The instrumented producer writes the header contract on every send, against the real broker."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode, TraceState
from waiting import poll_until, wait_until

from sagascope.instrumentation import (
    ContractError,
    InstrumentedProducer,
    _producer,
    _producer_spans,
    compensating,
    current_saga,
    saga_outcome,
    start_saga,
)
from sagascope.instrumentation import contract as c
from sagascope.testing import contract_violations
from sagascope.testing import header_value as header


def test_send_in_a_saga_writes_every_contract_header(kafka_producer, make_topic, read_records):
    topic = make_topic("orders")
    producer = InstrumentedProducer(kafka_producer, service="orders")
    with start_saga("order-fulfillment", "order-123") as saga:
        producer.send(topic, {"order": "123"}, key="123", type="RetrievePayment", kind="command",
                      step="payment")
    producer.flush()
    (record,) = read_records(topic, 1)
    assert contract_violations(record.headers) == []
    assert header(record, c.CE_SAGAID) == "order-123"
    assert header(record, c.CE_SAGATYPE) == "order-fulfillment"
    assert header(record, c.CE_SOURCE) == "orders"
    assert header(record, c.CE_TYPE) == "RetrievePayment"
    assert header(record, c.CE_KIND) == "command"
    assert header(record, c.CE_STEP) == "payment"
    assert c.parse_traceparent(header(record, c.TRACEPARENT)).trace_id == saga.trace_id
    assert json.loads(record.value) == {"order": "123"}
    assert record.key == b"123"


def test_message_ids_differ_per_send(kafka_producer, make_topic, read_records):
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders")
    with start_saga("s"):
        for _ in range(3):
            producer.send(topic, b"x", type="T")
    producer.flush()
    ids = {header(r, c.CE_ID) for r in read_records(topic, 3)}
    assert len(ids) == 3


def test_values_are_serialized_by_type(kafka_producer, make_topic, read_records):
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders")
    with start_saga("s"):
        producer.send(topic, [1, "é"], type="T")
        producer.send(topic, "text é", type="T")
        producer.send(topic, b"\x00raw", type="T")
    producer.flush()
    values = [r.value for r in read_records(topic, 3)]
    assert values == ['[1,"é"]'.encode(), "text é".encode(), b"\x00raw"]


def test_a_producer_with_its_own_serializer_gets_values_untouched(
    bootstrap_servers, make_topic, read_records
):
    topic = make_topic()
    kp = KafkaProducer(bootstrap_servers=bootstrap_servers,
                       value_serializer=lambda v: ("<" + v + ">").encode())
    producer = InstrumentedProducer(kp, service="orders")
    with start_saga("s"):
        producer.send(topic, "v", type="T")
    producer.close()
    assert read_records(topic, 1)[0].value == b"<v>"


def test_event_time_sets_ce_time(kafka_producer, make_topic, read_records):
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders")
    moment = datetime(2024, 3, 1, 12, 30, 5, 250000, tzinfo=UTC)
    with start_saga("s"):
        producer.send(topic, b"x", type="T", event_time=moment)
    producer.flush()
    assert header(read_records(topic, 1)[0], c.CE_TIME) == "2024-03-01T12:30:05.250Z"


def test_saga_outcome_marks_the_following_sends(kafka_producer, make_topic, read_records):
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders")
    with start_saga("s"):
        producer.send(topic, b"1", type="Step")
        saga_outcome("completed")
        producer.send(topic, b"2", type="OrderCompleted")
        producer.send(topic, b"3", type="Late", saga_status="failed")
    producer.flush()
    statuses = [header(r, c.CE_SAGASTATUS) for r in read_records(topic, 3)]
    assert statuses == [None, "completed", "failed"]


def test_compensating_marks_sends_inside_only(kafka_producer, make_topic, read_records):
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders")
    with start_saga("s"):
        with compensating("RetrievePayment"):
            producer.send(topic, b"1", type="RefundPayment", kind="command")
        producer.send(topic, b"2", type="Other")
    producer.flush()
    records = read_records(topic, 2)
    assert header(records[0], c.CE_COMPENSATES) == "RetrievePayment"
    assert header(records[1], c.CE_COMPENSATES) is None


def test_send_outside_a_saga_still_has_trace_and_message_headers(
    kafka_producer, make_topic, read_records
):
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders")
    assert current_saga() is None
    producer.send(topic, b"x", type="T")
    producer.flush()
    record = read_records(topic, 1)[0]
    assert contract_violations(record.headers, saga=False) == []
    assert header(record, c.CE_SAGAID) is None


@pytest.mark.parametrize(
    ("extra", "forged", "kept"),
    [
        ([("tenant", b"acme"), (c.CE_SAGAID, b"forged")], c.CE_SAGAID, b"real-id"),
        ({"tenant": b"acme", c.CE_SOURCE: b"forged"}, c.CE_SOURCE, b"orders"),
    ],
    ids=["pairs", "mapping"],
)
def test_extra_headers_are_kept_but_cannot_override_the_contract(
    kafka_producer, make_topic, read_records, extra, forged, kept
):
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders")
    with start_saga("s", "real-id"):
        producer.send(topic, b"x", type="T", headers=extra)
    producer.flush()
    record = read_records(topic, 1)[0]
    assert header(record, "tenant") == "acme"
    assert [v for k, v in record.headers if k == forged] == [kept]
    assert contract_violations(record.headers) == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"type": "T", "kind": "query"}, ContractError),
        ({"type": ""}, ContractError),
        ({"type": "T", "saga_status": "done"}, ContractError),
        ({"type": "T", "step": 3}, ContractError),
        ({"type": "T", "compensates": b"Pay"}, ContractError),
        ({"type": "T", "value": object()}, TypeError),
        ({"type": "T", "key": 12}, TypeError),
    ],
)
def test_bad_arguments_raise_clear_errors(kafka_producer, kwargs, error):
    producer = InstrumentedProducer(kafka_producer, service="orders")
    with pytest.raises(error):
        producer.send("unused", **kwargs)


def test_saga_api_rejects_bad_input():
    with pytest.raises(ContractError, match="saga status"):
        saga_outcome("done")
    with pytest.raises(ContractError), start_saga(""):
        pass
    with pytest.raises(ContractError), compensating(""):
        pass
    with pytest.raises(ContractError, match="service"):
        InstrumentedProducer(object.__new__(KafkaProducer), service="")


def test_producer_span_has_the_span_id_of_the_traceparent(
    kafka_producer, make_topic, read_records, spans
):
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders", tracer_provider=spans.tracer_provider)
    with start_saga("order", "o-7", tracer_provider=spans.tracer_provider):
        producer.send(topic, b"x", type="RetrievePayment", kind="command")
    producer.flush()
    tp = c.parse_traceparent(header(read_records(topic, 1)[0], c.TRACEPARENT))
    (span,) = spans.finished(kind="PRODUCER")
    (root,) = spans.finished(kind="INTERNAL")
    assert f"{span.context.span_id:016x}" == tp.span_id
    assert f"{span.context.trace_id:032x}" == tp.trace_id
    assert span.parent.span_id == root.context.span_id
    assert span.name == f"{topic} send"
    assert span.attributes["sagascope.saga.id"] == "o-7"
    assert span.attributes["messaging.destination.name"] == topic
    assert span.start_time <= span.end_time


def test_each_send_takes_the_span_current_at_that_send_as_parent(
    kafka_producer, make_topic, read_records, spans
):
    # What a send takes from the current span is kept while that span stays current.
    topic = make_topic()
    provider = spans.tracer_provider
    producer = InstrumentedProducer(kafka_producer, service="orders", tracer_provider=provider)
    tracer = provider.get_tracer("app")
    with start_saga("order", "o-8", tracer_provider=provider):
        producer.send(topic, b"1", type="T")
        with tracer.start_as_current_span("step") as step:
            producer.send(topic, b"2", type="T")
            producer.send(topic, b"3", type="T")
        producer.send(topic, b"4", type="T")
        with tracer.start_as_current_span("unrelated", context=otel_context.Context()) as other:
            producer.send(topic, b"5", type="T")
    producer.flush()
    (root,) = spans.finished(kind="INTERNAL", name="saga order")
    sent = {s.attributes["messaging.message.id"]: s for s in spans.finished(kind="PRODUCER")}
    parents = []
    for record in sorted(read_records(topic, 5), key=lambda r: r.value):
        span = sent[header(record, c.CE_ID)]
        written = c.parse_traceparent(header(record, c.TRACEPARENT))
        assert (written.trace_id, written.span_id) == (
            f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}")
        parents.append(span.parent.span_id)
    assert parents == [root.context.span_id, step.get_span_context().span_id,
                       step.get_span_context().span_id, root.context.span_id,
                       other.get_span_context().span_id]
    assert written.trace_id == f"{other.get_span_context().trace_id:032x}" != f"{root.context.trace_id:032x}"


def test_unsampled_traces_get_flag_00_and_no_producer_span(
    kafka_producer, make_topic, read_records, spans
):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(spans.exporter))
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders", tracer_provider=provider)
    with start_saga("order", tracer_provider=provider):
        producer.send(topic, b"x", type="T")
    producer.flush()
    assert header(read_records(topic, 1)[0], c.TRACEPARENT).endswith("-00")
    assert spans.finished() == []


def test_a_failure_building_headers_is_logged_and_the_message_still_sent(
    kafka_producer, make_topic, read_records, monkeypatch, caplog
):
    def broken(ms: int) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(_producer, "tick_at", broken)
    monkeypatch.setattr(_producer, "current_tick", [(-1,)])
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders")
    with caplog.at_level(logging.ERROR), start_saga("s"):
        producer.send(topic, b"payload", type="T", headers=[("tenant", b"acme")])
    producer.flush()
    record = read_records(topic, 1)[0]
    assert record.value == b"payload"
    assert header(record, "tenant") == "acme"
    assert "could not build saga headers" in caplog.text


def test_unwrapped_attributes_come_from_the_producer(kafka_producer, make_topic):
    topic = make_topic(partitions=3)
    producer = InstrumentedProducer(kafka_producer, service="orders")
    assert producer.partitions_for(topic) == {0, 1, 2}


def test_producer_spans_are_recorded_in_the_background_without_flush(
    kafka_producer, make_topic, spans
):
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders", tracer_provider=spans.tracer_provider)
    with start_saga("order", tracer_provider=spans.tracer_provider):
        producer.send(topic, b"x", type="T")
    poll_until(lambda: spans.finished(kind="PRODUCER"), 10, 0.05)
    assert len(spans.finished(kind="PRODUCER")) == 1


def test_a_burst_of_sends_is_recorded_before_the_drain_interval(
    kafka_producer, make_topic, spans, monkeypatch
):
    # WAKE_AT pending spans wake the drain thread; the interval alone would take a minute.
    monkeypatch.setattr(_producer_spans, "DRAIN_INTERVAL_S", 60.0)
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders", tracer_provider=spans.tracer_provider)
    with start_saga("order", tracer_provider=spans.tracer_provider):
        for _ in range(_producer_spans.WAKE_AT):
            producer.send(topic, b"x", type="T")
    wait_until(
        lambda: len(spans.finished(kind="PRODUCER")) >= _producer_spans.WAKE_AT, 10,
        lambda: f"{_producer_spans.WAKE_AT} spans (got {len(spans.finished(kind='PRODUCER'))})",
        0.05,
    )
    ids = {s.context.span_id for s in spans.finished(kind="PRODUCER")}
    assert len(ids) == _producer_spans.WAKE_AT


def _default_processor_run(kafka_producer, make_topic, sends: int, **processor_options):
    """``sends`` quick sends through a BatchSpanProcessor; (PRODUCER spans exported, drains)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, **processor_options))
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders", tracer_provider=provider)
    drains: list[int] = []
    emit = producer._spans._emit
    producer._spans._emit = lambda batch: drains.append(len(batch) // _producer_spans.FIELDS) or emit(batch)
    with start_saga("order", tracer_provider=provider):
        for _ in range(sends):
            producer.send(topic, b"x", type="T")
    producer.flush()
    provider.force_flush()
    sent = [s for s in exporter.get_finished_spans() if s.kind.name == "PRODUCER"]
    provider.shutdown()
    return len(sent), drains


@pytest.mark.parametrize("drain_thread", [True, False], ids=["drain-thread", "thread-never-runs"])
def test_no_drain_hands_over_more_than_a_default_batch_processor_keeps(
    kafka_producer, make_topic, monkeypatch, drain_thread
):
    # The SDK's BatchSpanProcessor keeps 2,048 spans by default and drops the rest: a drain
    # hands over about WAKE_AT spans, and at most LAGGING when the drain thread lags.
    if not drain_thread:  # the sender drains what the thread would have
        monkeypatch.setattr(_producer_spans.ProducerSpanRecorder, "_start_thread", lambda self: None)
    exported, drains = _default_processor_run(
        kafka_producer, make_topic, 2500, max_queue_size=100_000)
    assert exported == sum(drains) == 2500
    assert max(drains) <= _producer_spans.LAGGING < 2048


def test_a_fast_producer_loses_no_span_to_a_default_batch_processor(kafka_producer, make_topic):
    # End to end with the default queue (draining only every half second, 2,500 quick sends
    # kept 2,048-2,234 spans).
    exported, _ = _default_processor_run(kafka_producer, make_topic, 2500)
    assert exported == 2500


def _sent_span_fields(span) -> dict:
    exported = json.loads(span.to_json())
    for key in ("context", "parent_id", "start_time", "end_time"):
        exported.pop(key)
    exported["attributes"].pop("messaging.message.id")
    return exported


def test_producer_spans_made_without_the_constructors_read_like_the_sdks(
    kafka_producer, make_topic, spans, monkeypatch
):
    topic = make_topic(partitions=2)
    producer = InstrumentedProducer(kafka_producer, service="orders", tracer_provider=spans.tracer_provider)

    def one_span(**options) -> ReadableSpan:
        spans.clear()
        with start_saga("order", "o-9", tracer_provider=spans.tracer_provider):
            producer.send(topic, b"x", type="T", kind="command", partition=1, **options)
        producer.flush()
        (span,) = spans.finished(kind="PRODUCER")
        return span

    fast = one_span(step="Pay")
    assert type(fast) is not ReadableSpan and isinstance(fast, ReadableSpan)
    assert fast.status.status_code is StatusCode.UNSET and fast.events == () and fast.links == ()
    assert fast.resource is spans.tracer_provider.resource
    assert fast.context.is_valid and fast.context.trace_state == TraceState()
    # The SDK's own constructors, as an SDK whose spans looked otherwise would get.
    monkeypatch.setattr(_producer_spans, "_new_span", None)
    made = one_span(step="Pay")
    assert type(made) is ReadableSpan
    assert _sent_span_fields(fast) == _sent_span_fields(made)
    assert fast.context.trace_state == made.context.trace_state


def test_an_sdk_with_other_span_fields_gets_its_constructors(monkeypatch):
    from opentelemetry.sdk import trace as sdk_trace

    original = sdk_trace.ReadableSpan.__init__

    def with_a_new_field(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._a_new_field = 1

    monkeypatch.setattr(sdk_trace.ReadableSpan, "__init__", with_a_new_field)
    assert _producer_spans._fast_constructors() == (None, None)
    monkeypatch.undo()
    assert _producer_spans._fast_constructors() == (object.__new__, tuple.__new__)


EXIT_SCRIPT = r"""
import sys
from kafka import KafkaProducer
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, ConsoleSpanExporter
from sagascope.instrumentation import InstrumentedProducer, start_saga

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(
    formatter=lambda span: f"SPAN {span.kind.name} {span.name}\n")))
trace.set_tracer_provider(provider)
producer = InstrumentedProducer(KafkaProducer(bootstrap_servers=sys.argv[1]), service="orders")
with start_saga("order"):
    producer.send(sys.argv[2], b"x", type="T")
# no flush, no close: the exit hook records the pending PRODUCER span
"""


def test_pending_producer_spans_are_recorded_at_exit(bootstrap_servers, make_topic):
    topic = make_topic()
    proc = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, bootstrap_servers, topic],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert f"SPAN PRODUCER {topic} send" in proc.stdout


class _B3Like:
    """A non-W3C propagator: writes its own header (as B3 would)."""

    fields = frozenset({"x-trace"})

    def inject(self, carrier, context=None, setter=None):
        from opentelemetry import trace as otel_trace

        ctx = otel_trace.get_current_span(context).get_span_context()
        setter.set(carrier, "x-trace", f"{ctx.trace_id:032x}:{ctx.span_id:016x}")

    def extract(self, carrier, context=None, getter=None):
        raise NotImplementedError


def test_an_injected_propagator_writes_the_trace_context(kafka_producer, make_topic, read_records):
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders", propagator=_B3Like())
    with start_saga("order") as saga:
        producer.send(topic, b"x", type="T")
    producer.flush()
    record = read_records(topic, 1)[0]
    assert header(record, "x-trace").startswith(saga.trace_id + ":")
    assert header(record, c.TRACEPARENT) is None
    assert header(record, c.CE_SAGATYPE) == "order"


def test_a_forked_child_records_its_own_spans_not_its_parents(spans, monkeypatch):
    import os

    monkeypatch.setattr(_producer_spans, "DRAIN_INTERVAL_S", 60.0)  # the parent drains below
    recorder = _producer_spans.ProducerSpanRecorder("orders", spans.tracer_provider)
    info = (1, 2, None, b"0193abcd-1234-7abc-8def-0123456789ab", None)
    recorder.add("t", info, 1, 2, "T", "event", None)  # starts the parent's drain thread
    recorder.add("t", info, 1, 2, "T", "event", None)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no parent's spans, a drain thread of its own at its first span
        try:
            fresh = recorder._pending == [] and recorder._thread is None
            recorder.add("t", (3, 4, None, info[3], None), 1, 2, "T", "event", None)
            alive = recorder._thread is not None and recorder._thread.is_alive()
            os.write(write, b"%d %d %d" % (fresh, alive, recorder.drain()))
        finally:
            os._exit(0)
    os.close(write)
    _wait_or_kill(pid)
    assert os.read(read, 64) == b"1 1 1"
    assert recorder.drain() == 2


def _wait_or_kill(pid: int, timeout_s: float = 30) -> None:
    """Wait for a forked child; a child stuck on a lock inherited from a parent thread is
    killed and fails the test instead of hanging the run."""
    import os
    import signal

    if not poll_until(lambda: os.waitpid(pid, os.WNOHANG) != (0, 0), timeout_s, 0.02):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child did not finish")


def test_service_is_a_keyword_argument(kafka_producer):
    with pytest.raises(TypeError):
        InstrumentedProducer(kafka_producer, "orders")  # type: ignore[misc]
    assert InstrumentedProducer(kafka_producer, service="orders").service == "orders"


@dataclasses.dataclass
class OrderPlaced:
    order_id: str
    amount: float


@dataclasses.dataclass
class Tagged:
    type: str
    order_id: str


class ModelLike:
    """What the producer reads of a pydantic model: ``model_dump_json``."""

    def model_dump_json(self) -> str:
        return '{"order_id":"o-1"}'


def test_without_type_the_value_names_the_message_type(kafka_producer, make_topic, read_records):
    topic = make_topic()
    producer = InstrumentedProducer(kafka_producer, service="orders")
    with start_saga("s"):
        producer.send(topic, {"type": "PaymentRequested", "order_id": "o-1"})
        producer.send(topic, b' {"type": "StockReserved"}')
        producer.send(topic, '{"type": "OrderShipped"}')
        producer.send(topic, OrderPlaced("o-1", 9.5))
        producer.send(topic, Tagged("OrderTagged", "o-1"))
        producer.send(topic, ModelLike())
        producer.send(topic, {"type": "Ignored"}, type="Given")
    producer.flush()
    records = read_records(topic, 7)
    assert [header(r, c.CE_TYPE) for r in records] == [
        "PaymentRequested", "StockReserved", "OrderShipped", "OrderPlaced", "OrderTagged",
        "ModelLike", "Given"]
    assert json.loads(records[3].value) == {"order_id": "o-1", "amount": 9.5}
    assert json.loads(records[5].value) == {"order_id": "o-1"}


@pytest.mark.parametrize("value", [{"order": 1}, {"type": ""}, b"[1]", b"not json", "{bad", None])
def test_without_type_a_value_that_names_none_is_an_error_naming_the_send(kafka_producer, value):
    producer = InstrumentedProducer(kafka_producer, service="orders")
    with pytest.raises(ContractError, match=r"send to 'payments\.requests'.*type="):
        producer.send("payments.requests", value)
