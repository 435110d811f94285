"""The ``saga_handler`` decorator: a CONSUMER span linked to the producer, and the saga made current."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TracerProvider,
)
from sagascope.instrumentation import contract as c
from sagascope.instrumentation._carrier import kafka_getter
from sagascope.instrumentation._ids import new_span_id, new_trace_id
from sagascope.instrumentation._saga import (
    ATTR_MESSAGE_ID,
    ATTR_SAGA_ID,
    ATTR_SAGA_TYPE,
    ATTR_SERVICE,
    TRACER_NAME,
    SagaContext,
    current_saga_var,
    end_span,
    record_error,
)

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class _HandlerScope:
    """What one handled record opened: its span, and the tokens to restore the context."""

    __slots__ = ("otel_token", "saga_token", "span")

    def __init__(self, span: trace.Span, otel_token: object, saga_token: Any) -> None:
        self.span = span
        self.otel_token = otel_token
        self.saga_token = saga_token

    def fail(self, exc: BaseException) -> None:
        record_error(self.span, exc)

    def close(self) -> None:
        try:
            current_saga_var.reset(self.saga_token)
            otel_context.detach(self.otel_token)  # type: ignore[arg-type]
        except Exception:
            log.exception("could not restore the context after a handler")
        end_span(self.span)


class _Instrumentation:
    def __init__(
        self,
        service: str,
        consumer_group: str | None,
        tracer_provider: TracerProvider | None,
        propagator: TextMapPropagator | None,
    ) -> None:
        self.service = service
        self.consumer_group = consumer_group
        self.tracer_provider = tracer_provider
        self._tracer: trace.Tracer | None = None
        self.propagator = propagator

    @property
    def tracer(self) -> trace.Tracer:
        if self._tracer is None:
            # A ProxyTracer when tracer_provider is None: follows a global provider set later.
            self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=self.tracer_provider)
        return self._tracer

    def enter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _HandlerScope | None:
        """Open the span and make the saga current; None (and a log line) if that fails."""
        try:
            record = _find_record(args, kwargs)
            if record is None:
                log.warning("saga_handler: no ConsumerRecord among the arguments; not traced")
                return None
            return self._enter(record)
        except Exception:
            log.exception("saga_handler: could not trace a record; running the handler anyway")
            return None

    def _enter(self, record: Any) -> _HandlerScope:
        raw_headers = record.headers or []
        headers, errors = c.decode_headers(raw_headers)
        for error in errors:
            log.warning("%s[%s]@%s: %s", record.topic, record.partition, record.offset, error)
        producer_context, extracted = self._producer_context(record, raw_headers, headers)
        saga_id = headers.get(c.CE_SAGAID, "")
        saga_type = headers.get(c.CE_SAGATYPE, "")
        message_id = headers.get(c.CE_ID, "")
        attributes = self._attributes(record, headers, saga_id, saga_type, message_id)
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
            f"{record.topic} process",
            context=parent_ctx,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )
        span_context = span.get_span_context()
        if not span_context.is_valid:
            # No SDK: keep ids flowing so what the handler sends still carries the trace.
            trace_id = producer_context.trace_id if producer_context else new_trace_id()
            flags = producer_context.trace_flags if producer_context else TraceFlags(1)
            span = NonRecordingSpan(SpanContext(trace_id, new_span_id(), False, flags))
            span_context = span.get_span_context()
        saga = SagaContext(
            saga_id=saga_id,
            saga_type=saga_type,
            trace_id=format(span_context.trace_id, "032x"),
            causation_id=message_id or None,
        )
        otel_token = otel_context.attach(trace.set_span_in_context(span, extracted))
        saga_token = current_saga_var.set(saga)
        return _HandlerScope(span, otel_token, saga_token)

    def _producer_context(
        self, record: Any, raw_headers: Any, headers: dict[str, str]
    ) -> tuple[SpanContext | None, otel_context.Context]:
        """The producer's span context (None if absent or bad), and everything extracted."""
        extracted = (self.propagator or propagate.get_global_textmap()).extract(
            raw_headers, getter=kafka_getter, context=otel_context.Context()
        )
        span_context = trace.get_current_span(extracted).get_span_context()
        if span_context.is_valid:
            return span_context, extracted
        traceparent = headers.get(c.TRACEPARENT)
        if traceparent is not None:
            # Propagators drop a bad header silently; say what was wrong with it.
            try:
                c.parse_traceparent(traceparent)
                reason = "traceparent not understood by the propagator"
            except c.MalformedHeader as exc:
                reason = str(exc)
            log.warning(
                "%s[%s]@%s: %s; the span starts a new trace",
                record.topic, record.partition, record.offset, reason,
            )
        return None, extracted

    def _attributes(
        self, record: Any, headers: dict[str, str], saga_id: str, saga_type: str, message_id: str
    ) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            ATTR_SERVICE: self.service,
        }
        key = record.key
        if key is not None:
            attributes["messaging.kafka.message.key"] = (
                key.decode("utf-8", errors="replace") if isinstance(key, bytes) else str(key)
            )
        if self.consumer_group:
            attributes["messaging.consumer.group.name"] = self.consumer_group
        if message_id:
            attributes[ATTR_MESSAGE_ID] = message_id
        if saga_id:
            attributes[ATTR_SAGA_ID] = saga_id
        if saga_type:
            attributes[ATTR_SAGA_TYPE] = saga_type
        for header, attribute in (
            (c.CE_TYPE, "cloudevents.event_type"),
            (c.CE_SOURCE, "cloudevents.event_source"),
            (c.CE_KIND, "sagascope.kind"),
            (c.CE_STEP, "sagascope.step"),
            (c.CE_SAGASTATUS, "sagascope.saga.status"),
            (c.CE_COMPENSATES, "sagascope.compensates"),
            (c.CE_CAUSATIONID, "sagascope.causation_id"),
        ):
            value = headers.get(header)
            if value:
                attributes[attribute] = value
        return attributes


def _find_record(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # fn(record) or a method fn(self, record): the record is the first argument that looks
    # like a ConsumerRecord (kafka-python 2.x and 3.x share these fields).
    for arg in (*args, *kwargs.values()):
        if hasattr(arg, "headers") and hasattr(arg, "topic") and hasattr(arg, "offset"):
            return arg
    return None


def saga_handler(
    service: str,
    *,
    consumer_group: str | None = None,
    tracer_provider: TracerProvider | None = None,
    propagator: TextMapPropagator | None = None,
) -> Callable[[F], F]:
    """Decorate a message handler ``fn(record)`` or ``async fn(record)``.

    Each call starts a CONSUMER span linked to the producer's span (from ``traceparent``),
    with the Kafka key, offset, partition and consumer group as attributes, and makes the
    saga current: what the handler sends through an :class:`InstrumentedProducer` carries
    the same saga id, saga type and trace, with ``ce_causationid`` = the record's ``ce_id``.
    Exceptions are recorded on the span and re-raised unchanged. Telemetry failures
    (malformed headers, a broken tracer) are logged and the handler runs anyway.

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
                    return await fn(*args, **kwargs)
                except BaseException as exc:
                    scope.fail(exc)
                    raise
                finally:
                    scope.close()

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            scope = instrumentation.enter(args, kwargs)
            if scope is None:
                return fn(*args, **kwargs)
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:
                scope.fail(exc)
                raise
            finally:
                scope.close()

        return cast(F, wrapper)

    return decorate
