"""CONSUMER spans for the SDK's ``TracerProvider``, without the SDK's per-span overhead.

The SDK's ``Tracer.start_span`` costs about 30 µs per handled record here: it validates every
attribute (ours are known strings and ints), copies links and attributes into bounded
containers and runs the sampler through several layers. :class:`ConsumerSpan` is a complete,
recording ``trace.Span`` (attributes, events, status, exceptions, name updates) that keeps
plain containers; at ``end()`` it becomes an SDK ``ReadableSpan`` handed to the provider's span
processors, as a span from the SDK's tracer would be. Attributes set by the handler's own code
are validated like the SDK does. Providers that are not the SDK's go through their tracer.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

from sagascope.instrumentation._ids import new_span_id, new_trace_id, now_ns
from sagascope.instrumentation._saga import TRACER_NAME

log = logging.getLogger(__name__)

_SCOPE = InstrumentationScope(TRACER_NAME)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)
#: The SDK's default span limit on attributes (and on each event's attributes).
_MAX_ATTRIBUTES = 128


class SdkTarget:
    """What a fast CONSUMER span needs from an SDK ``TracerProvider``, looked up once."""

    __slots__ = ("processor", "provider", "resource", "sampler", "simple_sampler")

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.processor = provider._active_span_processor
        self.resource = provider.resource
        self.sampler = provider.sampler
        # ParentBased(ALWAYS_ON), the SDK default: the producer's sampled flag decides.
        self.simple_sampler = provider.sampler is DEFAULT_ON


def sdk_target(provider: Any) -> SdkTarget | None:
    """An :class:`SdkTarget` for an enabled SDK provider; None for any other provider."""
    if not isinstance(provider, SdkTracerProvider) or provider._disabled:
        return None
    # A provider that hands out its own tracers wants them used.
    if type(provider).get_tracer is not SdkTracerProvider.get_tracer:
        return None
    return SdkTarget(provider)


def start_consumer_span(
    target: SdkTarget,
    name: str,
    producer: SpanContext | None,
    attributes: dict[str, Any],
) -> trace.Span:
    """A recording CONSUMER span, child of and linked to ``producer``; non-recording if sampled out."""
    if producer is not None:
        trace_id = producer.trace_id
        links: Sequence[Link] = (Link(producer),)
    else:
        trace_id = new_trace_id()
        links = ()
    if target.simple_sampler:
        sampled = producer is None or producer.trace_flags.sampled
        trace_state = producer.trace_state if producer is not None else None
    else:
        parent_ctx = (
            trace.set_span_in_context(trace.NonRecordingSpan(producer)) if producer else None
        )
        result = target.sampler.should_sample(
            parent_ctx, trace_id, name, SpanKind.CONSUMER, attributes, links
        )
        # RECORD_ONLY spans are never exported: they are not recorded here either.
        sampled = result.decision is Decision.RECORD_AND_SAMPLE
        trace_state = result.trace_state
        if result.attributes:
            attributes.update(result.attributes)
    context = SpanContext(
        trace_id, new_span_id(), False, _SAMPLED if sampled else _NOT_SAMPLED, trace_state
    )
    if not sampled:
        return trace.NonRecordingSpan(context)
    span = ConsumerSpan(target, name, context, producer, attributes, links)
    # Processors see the span start, as from the SDK's tracer (e.g. to add attributes).
    target.processor.on_start(span, parent_context=None)
    return span


class ConsumerSpan(trace.Span):
    """A recording span that becomes an SDK ``ReadableSpan`` when it ends."""

    __slots__ = (
        "_attributes", "_context", "_end_ns", "_events", "_links", "_name", "_parent",
        "_start_ns", "_status", "_target",
    )

    def __init__(
        self,
        target: SdkTarget,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        links: Sequence[Link],
    ) -> None:
        self._target = target
        self._name = name
        self._context = context
        self._parent = parent
        self._attributes: dict[str, Any] | BoundedAttributes = attributes
        self._links: Sequence[Link] = links
        self._events: list[Event] = []
        self._status = _UNSET
        self._start_ns = now_ns()
        self._end_ns: int | None = None

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_ns is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end_ns is not None:
            return
        if not isinstance(self._attributes, BoundedAttributes):
            # Ours are clean; from the first attribute the handler sets, the SDK's checks apply.
            self._attributes = BoundedAttributes(_MAX_ATTRIBUTES, self._attributes, immutable=False)
        self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end_ns is not None:
            return
        cleaned = BoundedAttributes(_MAX_ATTRIBUTES, attributes)
        self._events.append(Event(name, cleaned, timestamp or now_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end_ns is None and context.is_valid:
            self._links = (*self._links, Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self._end_ns is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_ns is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        # The same event the SDK's Span.record_exception writes.
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        event_attributes: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event_attributes.update(attributes)
        self.add_event("exception", event_attributes, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_ns is not None:
            log.warning("span %r ended twice; the second end is ignored", self._name)
            return
        self._end_ns = end_time or now_ns()
        target = self._target
        target.processor.on_end(ReadableSpan(
            name=self._name,
            context=self._context,
            parent=self._parent,
            resource=target.resource,
            attributes=self._attributes,
            events=self._events,
            links=self._links,
            kind=SpanKind.CONSUMER,
            status=self._status,
            start_time=self._start_ns,
            end_time=self._end_ns,
            instrumentation_scope=_SCOPE,
        ))
