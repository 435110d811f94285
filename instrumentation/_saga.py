"""The current saga: a context variable, set by ``start_saga`` and by the handler decorator."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TracerProvider,
)

from sagascope.instrumentation import contract as c
from sagascope.instrumentation._ids import message_id_at, new_span_id, new_trace_id, now_ns
from sagascope.instrumentation.exceptions import ContractError

log = logging.getLogger(__name__)

TRACER_NAME = "sagascope.instrumentation"

#: Span attribute names for saga attributes (also read by the span exporter).
ATTR_SERVICE = "sagascope.service"
ATTR_SAGA_ID = "sagascope.saga.id"
ATTR_SAGA_TYPE = "sagascope.saga.type"
ATTR_MESSAGE_ID = "messaging.message.id"
#: OpenTelemetry's messaging attribute for the saga id: what any OpenTelemetry tool groups by.
ATTR_CONVERSATION_ID = "messaging.message.conversation_id"


class OutcomeSender(Protocol):
    """What sends an outcome marker: an ``InstrumentedProducer``."""

    def mark_outcome(self, status: str) -> Any: ...


@dataclass(slots=True, eq=False)
class SagaContext:
    """The saga that messages sent in this context belong to.

    Attributes:
        saga_id: business key of the saga (``ce_sagaid``); empty when a handled message had none.
        saga_type: the saga type (``ce_sagatype``), e.g. ``order-fulfillment``.
        trace_id: 32 hex digits of the saga's trace.
        causation_id: ``ce_id`` of the message being handled, carried as ``ce_causationid``.
        status: outcome marker set by :func:`saga_outcome`, sent as ``ce_sagastatus``.
        status_sent: whether a send carried ``status`` (else a marker goes at the end).
        producer: the producer that last sent in this saga's context.
    """

    saga_id: str
    saga_type: str
    trace_id: str
    causation_id: str | None = None
    status: str | None = None
    status_sent: bool = field(default=False, repr=False)
    producer: OutcomeSender | None = field(default=None, repr=False)
    # Saga headers encoded once, appended to every message sent in this context.
    encoded_headers: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        encoded = []
        if self.saga_id:
            saga_id = self.saga_id.encode()
            encoded += [(c.CE_SAGAID, saga_id), (c.CE_CORRELATIONID, saga_id)]
        if self.saga_type:
            encoded.append((c.CE_SAGATYPE, self.saga_type.encode()))
        if self.causation_id:
            encoded.append((c.CE_CAUSATIONID, self.causation_id.encode()))
        self.encoded_headers = tuple(encoded)


current_saga_var: contextvars.ContextVar[SagaContext | None] = contextvars.ContextVar(
    "sagascope_current_saga", default=None
)
compensates_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sagascope_compensates", default=None
)


def current_saga() -> SagaContext | None:
    """The saga of the current context (inside ``start_saga`` or a ``saga_handler``), or None."""
    return current_saga_var.get()


def check_status(status: str) -> str:
    if status not in c.SAGA_STATUSES:
        raise ContractError(
            f"unknown saga status {status!r}; choose from {', '.join(sorted(c.SAGA_STATUSES))}"
        )
    return status


def saga_outcome(status: str) -> None:
    """Mark the current saga's outcome; the following sends in this context carry it.

    If none does, the handler (or ``start_saga`` block) sends a marker when it ends without
    an exception: a ``Saga<Status>`` event to the producer's outcome topic, through the
    producer that last sent in this context, else the ``InstrumentedProducer`` made last.

    Raises:
        ContractError: if ``status`` is not completed, failed, compensating or compensated.
    """
    check_status(status)
    saga = current_saga_var.get()
    if saga is None:
        log.warning("saga_outcome(%r) called outside a saga; ignored", status)
        return
    saga.status = status
    saga.status_sent = False


#: The ``InstrumentedProducer`` made last in this process: sends an outcome no send carried,
#: when the saga's own context sent nothing.
_last_producer: list[weakref.ref[Any]] = []
#: Markers sent from a synchronous exit in a running event loop (aiokafka), until they finish.
_pending_markers: set[asyncio.Future[Any]] = set()


def remember_producer(producer: OutcomeSender) -> None:
    _last_producer[:] = [weakref.ref(producer)]


def send_pending_outcome(saga: SagaContext) -> Any:
    """Send the marker of an outcome no send carried; what the send returned, or None.

    With aiokafka that is an awaitable: the caller awaits it (an async handler) or hands it
    to :func:`finish_in_background`. Never raises: the marker is telemetry.
    """
    if saga.status is None or saga.status_sent:
        return None
    producer = saga.producer or (_last_producer[0]() if _last_producer else None)
    if producer is None:
        log.warning("saga %r: outcome %r not sent: no InstrumentedProducer in this process",
                    saga.saga_id, saga.status)
        return None
    if not saga.saga_id:
        log.warning("outcome %r not sent: the handled record carries no saga id", saga.status)
        return None
    try:
        return producer.mark_outcome(saga.status)
    except Exception:
        log.exception("saga %r: could not send its outcome %r", saga.saga_id, saga.status)
        return None


def finish_in_background(sending: Any) -> None:
    """Let a send still to be driven (aiokafka's coroutine) finish on the running loop, from a
    synchronous exit. Other clients' sends are done already (kafka-python's future, which is
    awaitable too, only reports the delivery)."""
    if not inspect.iscoroutine(sending):
        return
    try:
        future = asyncio.ensure_future(sending)
    except RuntimeError:  # no running loop: nothing can ever drive it
        log.warning("an outcome marker needs a running event loop; not sent")
        sending.close()
        return
    _pending_markers.add(future)
    future.add_done_callback(_marker_done)


def _marker_done(future: asyncio.Future[Any]) -> None:
    _pending_markers.discard(future)
    if not future.cancelled() and future.exception() is not None:
        log.error("could not send an outcome marker", exc_info=future.exception())


@contextmanager
def compensating(step: str) -> Iterator[None]:
    """Messages sent inside carry ``ce_compensates=step``: they undo ``step``."""
    if not isinstance(step, str) or not step:
        raise ContractError("compensating() needs the name of the step it undoes")
    token = compensates_var.set(step)
    try:
        yield
    finally:
        compensates_var.reset(token)


@contextmanager
def start_saga(
    saga_type: str,
    saga_id: str | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> Iterator[SagaContext]:
    """Start a saga: a new trace, a saga id (a UUIDv7 unless given) and type.

    Messages sent inside the block carry them. A span current at the start (e.g. an HTTP
    request) is linked from the saga's root span.
    """
    if not isinstance(saga_type, str) or not saga_type:
        raise ContractError("start_saga() needs a non-empty saga type")
    if saga_id is None:
        saga_id = message_id_at(now_ns() // 1_000_000)
    elif not isinstance(saga_id, str) or not saga_id:
        raise ContractError("saga_id must be a non-empty string")
    outer = current_saga_var.get()
    span = _start_root_span(saga_type, saga_id, tracer_provider)
    saga = SagaContext(
        saga_id=saga_id,
        saga_type=saga_type,
        trace_id=format(span.get_span_context().trace_id, "032x"),
        causation_id=outer.causation_id if outer is not None else None,
    )
    otel_token = otel_context.attach(trace.set_span_in_context(span))
    saga_token = current_saga_var.set(saga)
    try:
        yield saga
        finish_in_background(send_pending_outcome(saga))
    except Exception as exc:
        record_error(span, exc)
        raise
    finally:
        current_saga_var.reset(saga_token)
        otel_context.detach(otel_token)
        end_span(span)


def _start_root_span(
    saga_type: str, saga_id: str, tracer_provider: TracerProvider | None
) -> trace.Span:
    try:
        outer = trace.get_current_span().get_span_context()
        links = [Link(outer)] if outer.is_valid else []
        tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        span = tracer.start_span(
            f"saga {saga_type}",
            context=otel_context.Context(),  # a new trace, whatever is current
            kind=SpanKind.INTERNAL,
            attributes={
                ATTR_SAGA_ID: saga_id, ATTR_SAGA_TYPE: saga_type, ATTR_CONVERSATION_ID: saga_id,
            },
            links=links,
        )
        if span.get_span_context().is_valid:
            return span
    except Exception:
        log.exception("could not start the saga span; continuing with ids only")
    # No SDK installed: still give the saga its own trace so the headers carry one.
    return NonRecordingSpan(
        SpanContext(new_trace_id(), new_span_id(), False, TraceFlags(TraceFlags.SAMPLED))
    )


def record_error(span: trace.Span, exc: BaseException) -> None:
    try:
        if span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    except Exception:
        log.exception("could not record an exception on the span")


def end_span(span: trace.Span) -> None:
    try:
        span.end()
    except Exception:
        log.exception("could not end the span")
