"""Handling a consumed record: a CONSUMER span linked to the producer, and the saga made current.

Three forms, one implementation (:class:`_Instrumentation` opens a :class:`_HandlerScope`): the
``saga_handler`` decorator, for a function that takes the record, the ``handling(record)``
context manager, for a block in a hand-written consumer loop, and ``handled(consumer)``
(in ``_handled``), for the loop itself.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TracerProvider,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sagascope.instrumentation import contract as c
from sagascope.instrumentation._carrier import kafka_getter
from sagascope.instrumentation._consumer_span import SdkTarget, sdk_target, start_consumer_span
from sagascope.instrumentation._ids import new_span_id, new_trace_id
from sagascope.instrumentation._records import RecordReader, find_record, reader_for
from sagascope.instrumentation._saga import (
    ATTR_CONVERSATION_ID,
    ATTR_MESSAGE_ID,
    ATTR_SAGA_ID,
    ATTR_SAGA_TYPE,
    ATTR_SERVICE,
    TRACER_NAME,
    SagaContext,
    current_saga_var,
    end_span,
    finish_in_background,
    record_error,
    send_pending_outcome,
)

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class _HandlerScope:
    """What one handled record opened: its span, its saga, and the tokens to restore the context."""

    __slots__ = ("otel_token", "saga", "saga_token", "span")

    def __init__(
        self, span: trace.Span, saga: SagaContext, otel_token: object, saga_token: Any
    ) -> None:
        self.span = span
        self.saga = saga
        self.otel_token = otel_token
        self.saga_token = saga_token

    def fail(self, exc: BaseException) -> None:
        record_error(self.span, exc)

    def close(self, succeeded: bool) -> Any:
        """End the scope; returns the outcome marker's send when one went out (see
        ``saga_outcome``): with aiokafka an awaitable the caller awaits or lets finish."""
        # Sent while the handled record's context is current: caused by it, in its trace.
        sending = send_pending_outcome(self.saga) if succeeded else None
        try:
            current_saga_var.reset(self.saga_token)
            otel_context.detach(self.otel_token)  # type: ignore[arg-type]
        except Exception:
            log.exception("could not restore the context after a handler")
        end_span(self.span)
        return sending


# The W3C propagator's own pattern: what it accepts, the fast path accepts.
_TRACEPARENT_RE = re.compile(
    r"^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?[ \t]*$"
)
_W3C_ONLY = (
    [TraceContextTextMapPropagator],
    [TraceContextTextMapPropagator, W3CBaggagePropagator],
)
#: Headers that only the full propagator handles (the fast path reads traceparent alone).
_PROPAGATOR_EXTRAS = (c.TRACESTATE, "baggage")
_EMPTY_CONTEXT = otel_context.Context()
_NON_RECORDING_PROVIDERS = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_HEADER_ATTRIBUTES = (
    (c.CE_TYPE, "cloudevents.event_type"),
    (c.CE_SOURCE, "cloudevents.event_source"),
    (c.CE_KIND, "sagascope.kind"),
    (c.CE_STEP, "sagascope.step"),
    (c.CE_SAGASTATUS, "sagascope.saga.status"),
    (c.CE_COMPENSATES, "sagascope.compensates"),
    (c.CE_CAUSATIONID, "sagascope.causation_id"),
)


def _ids_only_span(producer_context: SpanContext | None) -> trace.Span:
    """No SDK: a span that records nothing but keeps the ids flowing, so what the handler
    sends still carries the trace."""
    trace_id = producer_context.trace_id if producer_context else new_trace_id()
    flags = producer_context.trace_flags if producer_context else TraceFlags(1)
    return NonRecordingSpan(SpanContext(trace_id, new_span_id(), False, flags))


def _is_plain_w3c(propagator: TextMapPropagator) -> bool:
    """Whether ``propagator`` reads nothing but W3C trace context (and baggage): the default."""
    if isinstance(propagator, TraceContextTextMapPropagator):
        return True
    inner = getattr(propagator, "_propagators", None)
    return isinstance(propagator, CompositePropagator) and [type(p) for p in inner or ()] in _W3C_ONLY


def _w3c_span_context(traceparent: str) -> SpanContext | None:
    """What the W3C propagator extracts from a lone ``traceparent``; None where it extracts nothing."""
    match = _TRACEPARENT_RE.match(traceparent)
    if match is None:
        return None
    version, trace_hex, span_hex, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, True, TraceFlags(int(flags, 16)))


class _Instrumentation:
    def __init__(
        self,
        service: str | None,
        consumer_group: str | None,
        tracer_provider: TracerProvider | None,
        propagator: TextMapPropagator | None,
    ) -> None:
        self.service = service
        self.consumer_group = consumer_group
        self.tracer_provider = tracer_provider
        self._tracer: trace.Tracer | None = None
        self.propagator = propagator
        # Looked up again only when the provider or the global propagator changes.
        self._target_of: Any = None
        self._target: SdkTarget | None = None
        self._fast_propagator_of: Any = None
        self._fast_propagator = False

    @property
    def tracer(self) -> trace.Tracer:
        if self._tracer is None:
            # A ProxyTracer when tracer_provider is None: follows a global provider set later.
            self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=self.tracer_provider)
        return self._tracer

    def _provider(self) -> Any:
        # The API's getter reads the environment on every call until a global provider is
        # set; its module attribute says the same without that.
        return (
            self.tracer_provider
            or getattr(trace, "_TRACER_PROVIDER", None)
            or trace.get_tracer_provider()
        )

    def _sdk_target(self, provider: Any) -> SdkTarget | None:
        if provider is not self._target_of:
            self._target = sdk_target(provider)
            self._target_of = provider
        return self._target

    def enter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _HandlerScope | None:
        """Open the span and make the saga current; None (and a log line) if that fails."""
        try:
            found = find_record(args, kwargs)
        except Exception:
            found = None
        if found is None:
            log.warning("saga_handler: no consumed record among the arguments; not traced")
            return None
        return self.enter_record(*found)

    def enter_record(self, record: Any, reader: RecordReader) -> _HandlerScope | None:
        """Open the span of ``record`` and make its saga current; None (logged) if that fails."""
        try:
            return self._enter(*reader(record))
        except Exception:
            log.exception("could not trace a record; running the handler anyway")
            return None

    def _enter(
        self, topic: str, partition: int, offset: int, key: Any, raw_headers: Any
    ) -> _HandlerScope:
        headers, errors = c.decode_headers(raw_headers)
        for error in errors:
            log.warning("%s[%s]@%s: %s", topic, partition, offset, error)
        producer_context, extracted = self._producer_context(
            topic, partition, offset, raw_headers, headers
        )
        name = f"{topic} process"
        provider = self._provider()
        target = self._sdk_target(provider)
        span: trace.Span
        if target is not None:
            attributes = self._attributes(topic, partition, offset, key, headers)
            span = start_consumer_span(target, name, producer_context, attributes)
        elif isinstance(provider, _NON_RECORDING_PROVIDERS):
            span = _ids_only_span(producer_context)
        else:
            attributes = self._attributes(topic, partition, offset, key, headers)
            span = self._start_through_tracer(name, producer_context, extracted, attributes)
        message_id = headers.get(c.CE_ID, "")
        saga = SagaContext(
            saga_id=c.saga_id_of(headers),
            saga_type=headers.get(c.CE_SAGATYPE, ""),
            trace_id=format(span.get_span_context().trace_id, "032x"),
            causation_id=message_id or None,
        )
        otel_token = otel_context.attach(trace.set_span_in_context(span, extracted))
        saga_token = current_saga_var.set(saga)
        return _HandlerScope(span, saga, otel_token, saga_token)

    def _start_through_tracer(
        self,
        name: str,
        producer_context: SpanContext | None,
        extracted: otel_context.Context,
        attributes: dict[str, Any],
    ) -> trace.Span:
        """The span from the provider's own tracer (a provider other than the SDK's, or none)."""
        if producer_context is not None:
            parent_ctx = trace.set_span_in_context(NonRecordingSpan(producer_context), extracted)
            links = [Link(producer_context)]
        else:
            # Baggage extracted from the record stays; a bad trace context does not.
            parent_ctx, links = extracted, []
        # The link is what the messaging conventions require (it survives batches); a parent
        # is optional for a single message, and we keep it so the trace id goes on across
        # hops, as the wire contract requires (one trace per saga).
        span = self.tracer.start_span(
            name, context=parent_ctx, kind=SpanKind.CONSUMER, attributes=attributes, links=links
        )
        if span.get_span_context().is_valid:
            return span
        return _ids_only_span(producer_context)

    def _producer_context(
        self, topic: str, partition: int, offset: int, raw_headers: Any, headers: dict[str, str]
    ) -> tuple[SpanContext | None, otel_context.Context]:
        """The producer's span context (None if absent or bad), and everything extracted."""
        propagator = self.propagator or propagate.get_global_textmap()
        if propagator is not self._fast_propagator_of:
            self._fast_propagator = _is_plain_w3c(propagator)
            self._fast_propagator_of = propagator
        traceparent = headers.get(c.TRACEPARENT)
        if self._fast_propagator and not any(h in headers for h in _PROPAGATOR_EXTRAS):
            # A lone traceparent: read it as the W3C propagator would, without its layers.
            if traceparent is None:
                return None, _EMPTY_CONTEXT
            fast = _w3c_span_context(traceparent)
            if fast is not None:
                return fast, _EMPTY_CONTEXT
        extracted = propagator.extract(
            raw_headers, getter=kafka_getter, context=otel_context.Context()
        )
        span_context = trace.get_current_span(extracted).get_span_context()
        if span_context.is_valid:
            return span_context, extracted
        if traceparent is not None:
            # Propagators drop a bad header silently; say what was wrong with it.
            try:
                c.parse_traceparent(traceparent)
                reason = "traceparent not understood by the propagator"
            except c.MalformedHeader as exc:
                reason = str(exc)
            log.warning(
                "%s[%s]@%s: %s; the span starts a new trace", topic, partition, offset, reason
            )
        return None, extracted

    def _attributes(
        self, topic: str, partition: int, offset: int, key: Any, headers: dict[str, str]
    ) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": topic,
            "messaging.destination.partition.id": str(partition),
            "messaging.kafka.offset": offset,
        }
        if self.service:
            attributes[ATTR_SERVICE] = self.service
        if key is not None:
            attributes["messaging.kafka.message.key"] = (
                key.decode("utf-8", errors="replace") if isinstance(key, bytes) else str(key)
            )
        if self.consumer_group:
            attributes["messaging.consumer.group.name"] = self.consumer_group
        message_id = headers.get(c.CE_ID)
        if message_id:
            attributes[ATTR_MESSAGE_ID] = message_id
        saga_id = c.saga_id_of(headers)
        if saga_id:
            attributes[ATTR_SAGA_ID] = attributes[ATTR_CONVERSATION_ID] = saga_id
        saga_type = headers.get(c.CE_SAGATYPE)
        if saga_type:
            attributes[ATTR_SAGA_TYPE] = saga_type
        for header, attribute in _HEADER_ATTRIBUTES:
            value = headers.get(header)
            if value:
                attributes[attribute] = value
        return attributes


def saga_handler(
    service: str,
    *,
    consumer_group: str | None = None,
    tracer_provider: TracerProvider | None = None,
    propagator: TextMapPropagator | None = None,
) -> Callable[[F], F]:
    """Decorate a message handler ``fn(record)`` or ``async fn(record)``.

    ``record`` is a kafka-python ``ConsumerRecord``, a ``confluent_kafka.Message`` or an
    aiokafka ``ConsumerRecord`` (the first such argument, so methods work too).

    Each call starts a CONSUMER span linked to the producer's span (from ``traceparent``),
    with the Kafka key, offset, partition, consumer group and saga id (also as
    ``messaging.message.conversation_id``) as attributes, and makes the saga current: what
    the handler sends through an :class:`InstrumentedProducer` carries the same saga id,
    saga type and trace, with ``ce_causationid`` = the record's ``ce_id``. An outcome set
    with ``saga_outcome`` that no send carried is sent as a marker when the handler returns.
    Exceptions are recorded on the span and re-raised unchanged. Telemetry failures
    (malformed headers, a broken tracer) are logged and the handler runs anyway. For a
    hand-written consumer loop, :func:`handling` does the same around a block.

    Args:
        service: this service's name (span attribute ``sagascope.service``).
        consumer_group: the consumer group, as a span attribute.
        tracer_provider: where CONSUMER spans go; the global provider when None.
        propagator: extract trace context with this instead of the global propagator.
    """
    if not isinstance(service, str) or not service:
        raise ValueError("saga_handler() needs the service name")
    instrumentation = _Instrumentation(service, consumer_group, tracer_provider, propagator)

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                scope = instrumentation.enter(args, kwargs)
                if scope is None:
                    return await fn(*args, **kwargs)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    scope.fail(exc)
                    scope.close(False)
                    raise
                await awaited(scope.close(True))
                return result

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            scope = instrumentation.enter(args, kwargs)
            if scope is None:
                return fn(*args, **kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                scope.fail(exc)
                scope.close(False)
                raise
            finish_in_background(scope.close(True))
            return result

        return cast(F, wrapper)

    return decorate


async def awaited(sending: Any) -> None:
    # An async handler waits for its outcome marker (aiokafka's send, a coroutine) as it
    # would for its own send.
    if inspect.iscoroutine(sending):
        try:
            await sending
        except Exception:
            log.exception("could not send an outcome marker")


#: One instrumentation per set of ``handling`` options, so its lookups are made once.
_instrumentations: dict[tuple[Any, ...], _Instrumentation] = {}


def handling(
    record: Any,
    *,
    service: str | None = None,
    consumer_group: str | None = None,
    tracer_provider: TracerProvider | None = None,
    propagator: TextMapPropagator | None = None,
) -> Handling:
    """Trace the handling of one consumed record in a hand-written consumer loop::

        for record in consumer:
            with handling(record, service="payment"):
                ...  # what is sent here joins the record's saga

    The block gets what a :func:`saga_handler` call gets: a CONSUMER span linked to the
    producer's, the record's saga made current (``as saga`` gives its :class:`SagaContext`),
    exceptions recorded and re-raised, an outcome no send carried sent at the end. ``record``
    is a kafka-python or aiokafka ``ConsumerRecord`` or a ``confluent_kafka.Message``. In
    ``async`` code, ``async with handling(record)`` also awaits that outcome marker (a plain
    ``with`` lets it finish on the running loop). To handle every record of a loop without
    re-indenting its body, iterate :func:`handled` instead.

    Args:
        record: the consumed record.
        service: this service's name (span attribute ``sagascope.service``; when None, the
            tracer provider's ``service.name`` names the span's service).
        consumer_group, tracer_provider, propagator: as for :func:`saga_handler`.
    """
    return Handling(instrumentation_for(service, consumer_group, tracer_provider, propagator),
                    record)


def instrumentation_for(
    service: str | None,
    consumer_group: str | None,
    tracer_provider: TracerProvider | None,
    propagator: TextMapPropagator | None,
) -> _Instrumentation:
    """The instrumentation of these ``handling`` (or ``handled``) options, made once."""
    options = (service, consumer_group, tracer_provider, propagator)
    instrumentation = _instrumentations.get(options)
    if instrumentation is None:
        if len(_instrumentations) >= 64:  # options are few; a bound keeps a misuse harmless
            _instrumentations.clear()
        instrumentation = _instrumentations[options] = _Instrumentation(*options)
    return instrumentation


class Handling:
    """The context manager :func:`handling` returns (``with`` or ``async with``)."""

    __slots__ = ("_instrumentation", "_record", "_scope")

    def __init__(self, instrumentation: _Instrumentation, record: Any) -> None:
        self._instrumentation = instrumentation
        self._record = record
        self._scope: _HandlerScope | None = None

    def __enter__(self) -> SagaContext | None:
        reader = reader_for(self._record)
        if reader is None:
            log.warning("handling: %s is not a consumed record; not traced",
                        type(self._record).__name__)
            return None
        self._scope = self._instrumentation.enter_record(self._record, reader)
        return self._scope.saga if self._scope is not None else None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        finish_in_background(self._close(exc))

    async def __aenter__(self) -> SagaContext | None:
        return self.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await awaited(self._close(exc))

    def _close(self, exc: BaseException | None) -> Any:
        scope, self._scope = self._scope, None
        if scope is None:
            return None
        if exc is not None:
            scope.fail(exc)
        return scope.close(exc is None)
