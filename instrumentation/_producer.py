"""The instrumented producer: wraps a kafka-python, confluent-kafka or aiokafka producer and
writes the header contract on every send."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TracerProvider, TraceState

from sagascope.instrumentation import contract as c
from sagascope.instrumentation._carrier import kafka_setter
from sagascope.instrumentation._clients import (
    Client,
    client_call,
    detect_client,
    has_serializers,
    raw_send,
)
from sagascope.instrumentation._context import current_span_reader
from sagascope.instrumentation._ids import current_tick, new_trace_id, tick_at
from sagascope.instrumentation._outcome import DEFAULT_OUTCOME_TOPIC, outcome_message
from sagascope.instrumentation._producer_spans import ProducerSpanRecorder, SpanInfo
from sagascope.instrumentation._saga import (
    SagaContext,
    check_status,
    compensates_var,
    current_saga_var,
    remember_producer,
)
from sagascope.instrumentation.exceptions import ContractError

log = logging.getLogger(__name__)

_SPECVERSION_HEADER = (c.CE_SPECVERSION, c.SPECVERSION.encode())
_KIND_HEADERS = {kind: (c.CE_KIND, kind.encode()) for kind in c.KINDS}
_CONTRACT_KEYS = frozenset(c.CONTRACT_HEADERS)
_FLAGS = (b"-00", b"-01")
_MAX_CACHED_TYPES = 10_000
_time_ns = time.time_ns
_getrandbits = random.getrandbits
#: (span, trace id, its SpanContext or None, sampled, b"00-<trace id>-", b"-<flags>",
#:  tracestate header or None, its TraceState or None): what a send takes from the current span.
_Parent = tuple[
    object, int, "SpanContext | None", int, bytes, bytes, "tuple[str, bytes] | None",
    "TraceState | None",
]
_NO_PARENT: _Parent = (object(), 0, None, 0, b"", b"", None, None)


class InstrumentedProducer:
    """Wraps a Kafka producer so every ``send`` carries the saga header contract.

    One API for the three Python clients; ``send`` returns what the client's own send returns:

    - ``kafka.KafkaProducer``: kafka-python's future.
    - ``confluent_kafka.Producer`` (or ``SerializingProducer``): calls ``produce`` and returns
      its None; ``on_delivery`` is passed through; ``poll()`` is the producer's own.
    - ``aiokafka.AIOKafkaProducer``: a coroutine, ``await``ed like the client's ``send``
      (it resolves to aiokafka's delivery future); ``flush()`` and ``close()`` are coroutines.

    Each send writes ``traceparent`` and the ``ce_*`` headers (id, source, type, time, kind,
    saga id/type, the same saga id as the CloudEvents ``ce_correlationid``, causation and,
    when set, step, status and compensates) and records a PRODUCER span for sampled traces.
    What is constant per service, per saga and per message type is encoded once.

    Args:
        producer: the application's ``kafka.KafkaProducer`` (kafka-python 2.x or 3.x),
            ``confluent_kafka.Producer`` or ``aiokafka.AIOKafkaProducer``; recognised once,
            here, without importing the other clients.
        service: this service's name, sent as ``ce_source`` (keyword: ``service="payment"``).
        outcome_topic: where :meth:`mark_outcome` sends saga outcome markers.
        tracer_provider: where PRODUCER spans go; the global provider when None.
        propagator: write trace context with this propagator instead of the built-in
            W3C ``traceparent`` writer (slower; for B3 or composite propagation).
    """

    def __init__(
        self,
        producer: Any,
        *,
        service: str,
        outcome_topic: str = DEFAULT_OUTCOME_TOPIC,
        tracer_provider: TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        if not isinstance(service, str) or not service:
            raise ContractError("service must be a non-empty string (it is sent as ce_source)")
        if not isinstance(outcome_topic, str) or not outcome_topic:
            raise ContractError("outcome_topic must be a non-empty topic name")
        self.client = detect_client(producer)
        self._producer = producer
        self._async = self.client is Client.AIOKAFKA
        self._confluent = self.client is Client.CONFLUENT
        # The client's own call, looked up once; raw_send's wrapper is for the rare arguments.
        call = client_call(producer, self.client)
        self._raw_send = raw_send(call, self.client)
        self._call: Callable[..., Any] = call
        self._current_span = current_span_reader()
        self._parent = _NO_PARENT
        self.service = service
        self._source_header = (c.CE_SOURCE, service.encode())
        self._type_headers: dict[str, tuple[str, bytes]] = {}
        # A producer with its own serializer gets values and keys untouched.
        value_serializer, key_serializer = has_serializers(producer, self.client)
        self._serialize_values = not value_serializer
        self._serialize_keys = not key_serializer
        self._propagator = propagator
        self._spans = ProducerSpanRecorder(service, tracer_provider)
        self.outcome_topic = outcome_topic
        remember_producer(self)

    @property
    def producer(self) -> Any:
        """The wrapped producer."""
        return self._producer

    @property
    def dropped_spans(self) -> int:
        """PRODUCER spans dropped because too many were pending."""
        return self._spans.dropped

    def __getattr__(self, name: str) -> Any:
        # Everything we do not wrap (partitions_for, metrics, ...) is the producer's own.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._producer, name)

    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        *,
        type: str | None = None,
        kind: str = c.KIND_EVENT,
        step: str | None = None,
        saga_status: str | None = None,
        compensates: str | None = None,
        headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        event_time: datetime | float | None = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> Any:
        """Send a message with the contract headers; returns what the client's send returns.

        Args:
            topic: destination topic.
            value: bytes as is; dict or list as JSON (UTF-8); str as UTF-8; a dataclass or a
                pydantic model as its JSON.
            key: bytes, or str as UTF-8.
            type: message type (``ce_type``), e.g. ``PaymentReceived``. When None: the
                value's ``type`` field (a dict, a JSON object, a dataclass or pydantic
                object), else the class name of a dataclass or pydantic object.
            kind: ``event`` or ``command`` (``ce_kind``).
            step: saga step name (``ce_step``).
            saga_status: outcome marker (``ce_sagastatus``); overrides :func:`saga_outcome`.
            compensates: the step this message undoes (``ce_compensates``); overrides
                :func:`compensating`.
            headers: extra headers, ``[(key, bytes)]`` (a key may repeat; every one is kept)
                or a mapping; contract headers in it are replaced by ours.
            partition, timestamp_ms: passed to the client (confluent-kafka's ``timestamp``).
            event_time: ``ce_time`` (datetime or epoch seconds); now when None.
            on_delivery: confluent-kafka only: the delivery callback ``produce`` takes.

        Raises:
            ContractError: an unknown ``kind`` or ``saga_status``, an empty ``type`` (or none
                given nor found in the value), or a ``step``/``compensates`` that is not a
                string.
            TypeError: a value or key that cannot be serialized, or ``on_delivery`` with a
                client other than confluent-kafka.
        """
        # This runs once per message: every check below is the cheapest that says the same.
        kind_header = _KIND_HEADERS.get(kind)
        if kind_header is None:
            raise ContractError(f"kind must be 'event' or 'command', got {kind!r}")
        if type is None:
            type = default_type(topic, value)
        type_header = self._type_headers.get(type) or self._type_header(type)
        if saga_status is not None:
            check_status(saga_status)
        if step is not None and not isinstance(step, str):
            raise ContractError(f"step must be a string, got {step!r}")
        if compensates is not None and not isinstance(compensates, str):
            raise ContractError(f"compensates must be a string, got {compensates!r}")
        if on_delivery is not None and not self._confluent:
            raise TypeError(f"on_delivery is confluent-kafka's; with {self.client.value}, "
                            "add a callback to what send returns")
        if value.__class__ is not bytes and self._serialize_values:
            value = _value_bytes(value)
        if key is not None and key.__class__ is not bytes and self._serialize_keys:
            key = _key_bytes(key)
        if headers is not None and not isinstance(headers, list):
            headers = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        start_ns = _time_ns()
        built: list[tuple[str, bytes]] | None
        span_info: SpanInfo | None
        try:
            built, span_info = self._headers(
                start_ns, type_header, kind_header, step, saga_status, compensates, headers,
                event_time,
            )
        except Exception:
            log.exception("could not build saga headers; sending without them")
            built, span_info = list(headers) if headers else None, None
        if not self._confluent:
            result = self._call(topic, value=value, key=key, headers=built, partition=partition,
                                timestamp_ms=timestamp_ms)
        elif partition is None and timestamp_ms is None and on_delivery is None:
            result = self._call(topic, value=value, key=key, headers=built)
        else:
            result = self._raw_send(topic, value, key, built, partition, timestamp_ms, on_delivery)
        if span_info is None:
            return result
        spans = self._spans
        if not (spans.recording or spans.wanted()):
            return result
        if self._async:
            return self._record_after(result, topic, span_info, start_ns, type, kind, partition)
        spans.add(topic, span_info, start_ns, _time_ns(), type, kind, partition)
        return result

    def send_and_wait(
        self, topic: str, value: Any = None, key: Any = None, **options: Any
    ) -> Awaitable[Any]:
        """aiokafka: send with the contract headers and wait for the broker's acknowledgement.

        Takes ``send``'s arguments; awaited, returns aiokafka's ``RecordMetadata``, like
        ``AIOKafkaProducer.send_and_wait``. Bad arguments raise at the call, as with ``send``.

        Raises:
            TypeError: with a client other than aiokafka (kafka-python: ``send(...).get()``;
                confluent-kafka: ``send(...)`` then ``flush()``).
        """
        if not self._async:
            raise TypeError(
                f"send_and_wait is aiokafka's; with {self.client.value}, "
                + ("call send(...).get()" if self.client is Client.KAFKA_PYTHON
                   else "call send(...) then flush()")
            )
        return _awaited_twice(self.send(topic, value, key, **options))

    async def _record_after(
        self, sending: Awaitable[Any], topic: str, span_info: SpanInfo, start_ns: int,
        type_: str, kind: str, partition: int | None,
    ) -> Any:
        # aiokafka: the span ends when the client has taken the message, as with the others.
        result = await sending
        self._spans.add(topic, span_info, start_ns, _time_ns(), type_, kind, partition)
        return result

    def _headers(
        self,
        start_ns: int,
        type_header: tuple[str, bytes],
        kind_header: tuple[str, bytes],
        step: str | None,
        saga_status: str | None,
        compensates: str | None,
        extra: list[tuple[str, bytes]] | None,
        event_time: datetime | float | None,
    ) -> tuple[list[tuple[str, bytes]], SpanInfo | None]:
        saga = current_saga_var.get()
        span = self._current_span()
        parent = self._parent
        if parent[0] is not span:
            parent = self._parent_of(span, saga)
        (_, trace_id, parent_context, sampled, traceparent_prefix, traceparent_suffix, tracestate,
         trace_state) = parent
        span_id = _getrandbits(64) or 1
        ms = start_ns // 1_000_000
        tick = current_tick[0]
        if tick[0] != ms:
            # The id's time part and ce_time change once a millisecond: format them then.
            tick = tick_at(ms)
        message_id = b"%s%012x" % (tick[1], next(tick[2]))
        out = [
            (c.TRACEPARENT, b"%s%016x%s" % (traceparent_prefix, span_id, traceparent_suffix)),
            _SPECVERSION_HEADER,
            (c.CE_ID, message_id),
            self._source_header,
            type_header,
            tick[3] if event_time is None else (c.CE_TIME, c.format_time(event_time).encode()),
            kind_header,
        ]
        if tracestate is not None:
            out.insert(1, tracestate)
        if self._propagator is not None:
            out[: 2 if tracestate is not None else 1] = self._inject(
                trace_id, span_id, sampled, trace_state
            )
        if saga is not None:
            out += saga.encoded_headers
            saga.producer = self
            if saga_status is None:
                saga_status = saga.status
            if saga_status is not None and saga_status == saga.status:
                saga.status_sent = True
        if step:
            out.append((c.CE_STEP, step.encode()))
        if saga_status:
            out.append((c.CE_SAGASTATUS, saga_status.encode()))
        if compensates is None:
            compensates = compensates_var.get()
        if compensates:
            out.append((c.CE_COMPENSATES, compensates.encode()))
        if extra:
            written = {k for k, _ in out}
            out = [h for h in extra if h[0] not in written and h[0] not in _CONTRACT_KEYS] + out
        return out, (trace_id, span_id, parent_context, message_id, saga) if sampled else None

    def _parent_of(self, span: object, saga: SagaContext | None) -> _Parent:
        """What a message sent under ``span`` takes from it; kept while that span is current."""
        context = span.get_span_context() if isinstance(span, trace.Span) else None
        if context is not None and context.is_valid:
            trace_id, sampled = context.trace_id, context.trace_flags & 1
        elif saga is not None:
            trace_id, sampled, context = int(saga.trace_id, 16), 1, None
        else:
            trace_id, sampled, context = new_trace_id(), 1, None
        trace_state = context.trace_state if context is not None and context.trace_state else None
        tracestate = (c.TRACESTATE, trace_state.to_header().encode()) if trace_state else None
        parent: _Parent = (
            span, trace_id, context, sampled, b"00-%032x-" % trace_id, _FLAGS[sampled],
            tracestate, trace_state,
        )
        if context is not None:
            # Only a valid span is kept: without one, the trace comes from the saga or is new.
            self._parent = parent
        return parent

    def _inject(
        self, trace_id: int, span_id: int, sampled: int, trace_state: TraceState | None
    ) -> list[tuple[str, bytes]]:
        assert self._propagator is not None
        carrier: list[tuple[str, bytes]] = []
        span = NonRecordingSpan(
            SpanContext(trace_id, span_id, False, TraceFlags(sampled), trace_state)
        )
        self._propagator.inject(carrier, context=trace.set_span_in_context(span), setter=kafka_setter)
        return carrier

    def _type_header(self, type_: str) -> tuple[str, bytes]:
        if not isinstance(type_, str) or not type_:
            raise ContractError("type must be a non-empty string (it is sent as ce_type)")
        if len(self._type_headers) >= _MAX_CACHED_TYPES:
            self._type_headers.clear()
        header = (c.CE_TYPE, type_.encode())
        self._type_headers[type_] = header
        return header

    def mark_outcome(
        self,
        status: str,
        *,
        saga_id: str | None = None,
        saga_type: str | None = None,
        topic: str | None = None,
    ) -> Any:
        """Send a saga's outcome without a business message: a small contract message.

        A ``SagaCompleted``/``SagaFailed``/``SagaCompensating``/``SagaCompensated`` event
        carrying ``ce_sagastatus=status``, keyed by the saga id, to ``topic`` (the producer's
        ``outcome_topic`` when None). It is a normal record with the normal headers, so every
        collector reads it. Returns what :meth:`send` returns.

        Args:
            status: completed, failed, compensating or compensated.
            saga_id: the saga; the current one (inside ``start_saga`` or a handler) when None.
            saga_type: the saga type when ``saga_id`` names another saga than the current one.
            topic: where to send it.

        Raises:
            ContractError: an unknown status, or no ``saga_id`` outside a saga.
        """
        check_status(status)
        current = current_saga_var.get()
        if saga_id is None or (current is not None and saga_id == current.saga_id):
            if current is None or not current.saga_id:
                raise ContractError("mark_outcome() outside a saga needs saga_id=")
            return self._send_outcome(status, current, topic)
        if not isinstance(saga_id, str) or not saga_id:
            raise ContractError("saga_id must be a non-empty string")
        saga = SagaContext(
            saga_id=saga_id,
            saga_type=saga_type or "",
            trace_id=format(new_trace_id(), "032x"),
            causation_id=current.causation_id if current is not None else None,
        )
        token = current_saga_var.set(saga)
        try:
            return self._send_outcome(status, saga, topic)
        finally:
            current_saga_var.reset(token)

    def _send_outcome(self, status: str, saga: SagaContext, topic: str | None) -> Any:
        type_, value = outcome_message(status, saga.saga_id, saga.saga_type)
        return self.send(topic or self.outcome_topic, value, saga.saga_id, type=type_,
                         saga_status=status)

    def flush(self, timeout: float | None = None) -> Any:
        """Flush the producer, then hand pending PRODUCER spans to the span processors.

        Returns what the client's ``flush`` returns (confluent-kafka: the messages still
        queued); with aiokafka, a coroutine to ``await``.
        """
        if self._async:
            return self._flush_async()
        if self.client is Client.CONFLUENT:
            result = self._producer.flush() if timeout is None else self._producer.flush(timeout)
        else:
            result = self._producer.flush(timeout)
        self._spans.drain()
        return result

    async def _flush_async(self) -> None:
        await self._producer.flush()
        self._spans.drain()

    def close(self, timeout: float | None = None) -> Any:
        """Record pending spans and close the wrapped producer (aiokafka: ``stop``, awaited)."""
        if self._async:
            return self._close_async()
        self._spans.close()
        if self.client is Client.CONFLUENT:
            # close() flushes first; it takes no timeout.
            return self._producer.close()
        return self._producer.close(timeout)

    async def _close_async(self) -> None:
        self._spans.close()
        await self._producer.stop()


async def _awaited_twice(sending: Awaitable[Any]) -> Any:
    delivery = await sending  # the client took the message: its delivery future
    return await delivery


def _value_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json.dumps(dataclasses.asdict(value), separators=(",", ":"), ensure_ascii=False,
                          default=str).encode()
    dump_json = getattr(value, "model_dump_json", None)
    if callable(dump_json):  # a pydantic model
        return str(dump_json()).encode()
    raise TypeError(
        f"value must be bytes, str, dict, list, a dataclass or a pydantic model, "
        f"got {type(value).__name__}"
    )


def default_type(topic: str, value: Any) -> str:
    """The message type of a send without ``type=``: the value's ``type`` field, else the
    class name of a dataclass or pydantic object.

    Raises:
        ContractError: when the value says neither.
    """
    found: Any = None
    if isinstance(value, dict):
        found = value.get("type")
    elif isinstance(value, bytes | str):
        found = _json_type(value)
    elif dataclasses.is_dataclass(value) or callable(getattr(value, "model_dump_json", None)):
        found = getattr(value, "type", None)
        if not (isinstance(found, str) and found):
            found = value.__class__.__name__
    if isinstance(found, str) and found:
        return found
    raise ContractError(
        f"send to {topic!r}: no type= given and the value has none (a 'type' field of a dict "
        "or JSON object, or a dataclass or pydantic object); pass type=..."
    )


def _json_type(value: bytes | str) -> Any:
    # Only a JSON object can have a type field: anything else is not parsed.
    if not value or value.lstrip()[:1] not in (b"{", "{"):
        return None
    try:
        document = json.loads(value)
    except ValueError:
        return None
    return document.get("type") if isinstance(document, dict) else None


def _key_bytes(key: Any) -> bytes:
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, bytearray | memoryview):
        return bytes(key)
    raise TypeError(f"key must be bytes or str, got {type(key).__name__}")
