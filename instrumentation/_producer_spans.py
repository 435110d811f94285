"""PRODUCER spans, recorded off the send path.

Creating an SDK span costs about 20 µs, more than the whole budget of a send. ``send()`` only
appends a tuple (ids and times it already has); a background thread turns pending tuples into
finished spans and hands them to the tracer provider's span processors every half second,
and ``flush()``/``close()`` drain what is left. With the SDK's ``TracerProvider``, the span id in
the message's ``traceparent`` is the id the recorded span gets, so the consumer's span link
points at a real span. (Another provider gets spans through its tracer, with its own ids.)
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TracerProvider,
)
from sagascope.instrumentation._saga import (
    ATTR_MESSAGE_ID,
    ATTR_SAGA_ID,
    ATTR_SAGA_TYPE,
    ATTR_SERVICE,
    TRACER_NAME,
)

if TYPE_CHECKING:
    from sagascope.instrumentation._saga import SagaContext

log = logging.getLogger(__name__)

#: (trace_id, span_id, the parent's SpanContext or None, message_id (ASCII bytes, as sent),
#: saga or None): what the send knew.
SpanInfo = tuple[int, int, "SpanContext | None", bytes, "SagaContext | None"]
#: (topic, span info, start_ns, end_ns, type, kind, partition or None): one span to record,
#: built per send from what it already has; the span itself is made off the send path.
PendingSpan = tuple[str, SpanInfo, int, int, str, str, "int | None"]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NON_RECORDING_PROVIDERS = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_SCOPE = InstrumentationScope(TRACER_NAME)
DRAIN_INTERVAL_S = 0.5
#: Past this many pending spans, new ones are dropped (and counted) until the next drain.
MAX_PENDING = 100_000


def _drain_at_exit(ref: weakref.ref[ProducerSpanRecorder]) -> None:
    recorder = ref()
    if recorder is not None:
        recorder.drain()


class ProducerSpanRecorder:
    """Collects PRODUCER spans of sampled traces and emits them in the background."""

    def __init__(self, service: str, tracer_provider: TracerProvider | None) -> None:
        self.service = service
        self._tracer_provider = tracer_provider
        self._pending: list[PendingSpan] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.dropped = 0
        self._thread: threading.Thread | None = None
        #: True once a recording provider was seen: the global provider is set once, and a
        #: given one stays, so senders read this attribute and ask ``wanted()`` only before.
        self.recording = False
        # The API's getter makes a global provider from this variable when none is set.
        self._provider_from_environment = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ

    def wanted(self) -> bool:
        """Whether a tracer provider that records spans is there (a no-op one records nothing)."""
        if self.recording:
            return True
        # The API's getter reads the environment on every call until a global provider is
        # set; its module attribute says the same without that.
        provider = self._tracer_provider or getattr(trace, "_TRACER_PROVIDER", None)
        if provider is None:
            if not self._provider_from_environment:
                return False  # the API would hand out its proxy, which records nothing
            provider = trace.get_tracer_provider()
        self.recording = not isinstance(provider, _NON_RECORDING_PROVIDERS)
        return self.recording

    def add(self, item: PendingSpan) -> None:
        pending = self._pending
        if len(pending) >= MAX_PENDING:
            self.dropped += 1
            return
        pending.append(item)  # list.append is atomic under the GIL
        if self._thread is None:
            self._start_thread()

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name=f"sagascope-producer-spans-{self.service}", daemon=True
                )
                self._thread.start()
                # Registered at the first span, when the application's TracerProvider most
                # likely exists: atexit runs in reverse order, so the pending spans reach the
                # processors before the provider's own exit hook shuts them down.
                atexit.register(_drain_at_exit, weakref.ref(self))

    def _run(self) -> None:
        while not self._stop.wait(DRAIN_INTERVAL_S):
            self.drain()

    def drain(self) -> int:
        """Emit every pending span now; returns how many were emitted. Never raises."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            return self._emit(batch)
        except Exception:
            log.exception("could not record %d producer spans", len(batch))
            return 0

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.drain()

    def _emit(self, batch: list[PendingSpan]) -> int:
        provider: Any = self._tracer_provider or trace.get_tracer_provider()
        processor = getattr(provider, "_active_span_processor", None)
        if processor is None or not hasattr(provider, "resource"):
            return self._emit_through_tracer(provider, batch)
        # The SDK's own path (Tracer.start_span) would redo per span what is constant here;
        # so would building each span's attributes: spans of one topic, type and saga share
        # all but the message id, so a batch builds them once per such group and copies.
        resource = provider.resource
        on_end = processor.on_end
        shared: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
        for item in batch:
            (topic, (trace_id, span_id, parent, message_id, saga), start_ns, end_ns, type_, kind,
             partition) = item
            group = (topic, type_, kind, saga, partition)
            found = shared.get(group)
            if found is None:
                found = shared[group] = (f"{topic} send", self._attributes(item))
            name, attributes = found
            attributes = attributes.copy()
            attributes[ATTR_MESSAGE_ID] = message_id.decode()
            on_end(ReadableSpan(
                name=name,
                context=SpanContext(trace_id, span_id, False, _SAMPLED),
                parent=parent,
                resource=resource,
                attributes=attributes,
                kind=SpanKind.PRODUCER,
                instrumentation_scope=_SCOPE,
                start_time=start_ns,
                end_time=end_ns,
            ))
        return len(batch)

    def _attributes(self, item: PendingSpan) -> dict[str, Any]:
        topic, (_, _, _, message_id, saga), _, _, type_, kind, partition = item
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": topic,
            ATTR_MESSAGE_ID: message_id.decode(),
            ATTR_SERVICE: self.service,
            "cloudevents.event_type": type_,
            "sagascope.kind": kind,
        }
        if partition is not None:
            attributes["messaging.destination.partition.id"] = str(partition)
        if saga is not None and saga.saga_id:
            attributes[ATTR_SAGA_ID] = saga.saga_id
        if saga is not None and saga.saga_type:
            attributes[ATTR_SAGA_TYPE] = saga.saga_type
        return attributes

    def _emit_through_tracer(self, provider: Any, batch: list[PendingSpan]) -> int:
        tracer = trace.get_tracer(TRACER_NAME, tracer_provider=provider)
        emitted = 0
        for item in batch:
            topic, (trace_id, span_id, parent_context, _, _), start_ns, end_ns = item[:4]
            # Without a parent, a stand-in carrying the trace id: the span joins that trace.
            parent = NonRecordingSpan(
                parent_context or SpanContext(trace_id, span_id, False, _SAMPLED)
            )
            span = tracer.start_span(
                f"{topic} send",
                context=trace.set_span_in_context(parent),
                kind=SpanKind.PRODUCER,
                attributes=self._attributes(item),
                start_time=start_ns,
            )
            if not span.is_recording():
                # A no-op provider records nothing; nothing else in the batch will differ.
                return emitted
            span.end(end_time=end_ns)
            emitted += 1
        return emitted
