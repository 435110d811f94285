"""PRODUCER spans, recorded off the send path.

Creating an SDK span costs about 20 µs, more than the whole budget of a send. ``send()`` only
appends the ids and times it already has to a flat list; a background thread turns them into
finished spans and hands them to the tracer provider's span processors every half second or
every ``WAKE_AT`` sends, whichever comes first, and ``flush()``/``close()`` drain what is
left. With the SDK's ``TracerProvider``, the span id in
the message's ``traceparent`` is the id the recorded span gets, so the consumer's span link
points at a real span. (Another provider gets spans through its tracer, with its own ids.)
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TracerProvider,
)

from sagascope.instrumentation._saga import (
    ATTR_CONVERSATION_ID,
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
#: Per pending span, these fields in a row of the recorder's one flat list: topic, the span
#: info's five, start_ns, end_ns, type, kind, partition or None. Flat because a tuple per send
#: lives until the next drain: thousands of them outlive the young garbage collections, reach
#: the oldest generation and bring on full collections, which in a process like a
#: kafka-python producer's (every in-flight future is a tracked object too) cost more than
#: the rest of the span's recording. A flat list of ids, times and shared objects adds none.
FIELDS = 11

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NON_RECORDING_PROVIDERS = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_SCOPE = InstrumentationScope(TRACER_NAME)
DRAIN_INTERVAL_S = 0.5
#: This many pending spans wake the draining thread before its interval is up. A drain hands
#: its spans to the processors in one go, and the SDK's ``BatchSpanProcessor`` keeps 2,048
#: by default and drops the rest: a fast producer's half second of spans would not fit.
#: Drains of about a quarter of that also die young (exported before the garbage collector
#: promotes them) and leave the processor's worker room to export between them.
WAKE_AT = 512
#: This many pending spans (the drain thread has not had its turn) are drained by the sender
#: itself, still within the default processor's 2,048.
LAGGING = 3 * WAKE_AT
#: A drain hands its spans over in parts of WAKE_AT, this long apart.
YIELD_S = 0.001
#: Past this many pending spans, new ones are dropped (and counted) until the next drain.
MAX_PENDING = 100_000


class _SentSpan(ReadableSpan):
    """A finished PRODUCER span, made without ``ReadableSpan.__init__``.

    A drain makes thousands of spans; the constructor's keyword arguments cost more than the
    rest of a span's recording. What every PRODUCER span here shares is set once, on this
    class; each span sets the seven fields that differ (see ``_emit``). It is a
    ``ReadableSpan`` to processors and exporters, read through the same properties.
    """

    _kind = SpanKind.PRODUCER
    _instrumentation_info = None
    _instrumentation_scope = _SCOPE
    _events = ()
    _links = ()
    _status = Status(StatusCode.UNSET)


_PER_SPAN_FIELDS = frozenset(
    ("_name", "_context", "_parent", "_resource", "_attributes", "_start_time", "_end_time"))


def _fast_constructors() -> tuple[Any, Any]:
    """``object.__new__`` and ``tuple.__new__`` for spans and their contexts, when that makes
    what the SDK's constructors make; ``(None, None)`` when this SDK's spans look otherwise.

    ``SpanContext(...)`` validates ids already known valid (random, non-zero) and
    ``ReadableSpan(...)`` takes twelve keyword arguments: the two together cost about a
    microsecond a span. Checked once against the real constructors, on the fields this SDK
    version sets, so a future SDK with other fields gets its own constructors.
    """
    try:
        context = SpanContext(1, 2, False, _SAMPLED)
        made = tuple.__new__(SpanContext, (1, 2, False, _SAMPLED, DEFAULT_TRACE_STATE, True))
        expected = vars(ReadableSpan(
            name="probe", context=context, parent=None, resource=Resource.get_empty(),
            attributes={"a": "b"}, kind=SpanKind.PRODUCER, instrumentation_scope=_SCOPE,
            start_time=1, end_time=2,
        ))
        shared = {name for name in vars(_SentSpan) if name.startswith("_") and
                  not name.startswith("__")}
        if (made != context or not made.is_valid or made.trace_state != context.trace_state
                or set(expected) != _PER_SPAN_FIELDS | shared
                or any(_comparable(getattr(_SentSpan, name)) != _comparable(expected[name])
                       for name in shared)):
            return None, None
    except Exception:
        return None, None
    return object.__new__, tuple.__new__


def _comparable(value: Any) -> Any:
    # Status has no __eq__: compare what it says.
    if isinstance(value, Status):
        return (value.status_code, value.description)
    return value


_new_span, _new_context = _fast_constructors()


#: Every recorder of the process, for the fork hook below.
_RECORDERS: weakref.WeakSet[ProducerSpanRecorder] = weakref.WeakSet()


def _forget_parent_state() -> None:
    # A forked child has none of its parent's threads: its recorders start their own drain
    # thread at their next span, and leave the parent's pending spans to the parent.
    for recorder in list(_RECORDERS):
        recorder._after_fork()


os.register_at_fork(after_in_child=_forget_parent_state)


def _drain_at_exit(ref: weakref.ref[ProducerSpanRecorder]) -> None:
    recorder = ref()
    if recorder is not None:
        recorder.drain()


class ProducerSpanRecorder:
    """Collects PRODUCER spans of sampled traces and emits them in the background."""

    def __init__(self, service: str, tracer_provider: TracerProvider | None) -> None:
        self.service = service
        self._tracer_provider = tracer_provider
        self._pending: list[Any] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._woken = False
        self._stopping = False
        self.dropped = 0
        self._thread: threading.Thread | None = None
        #: True once a recording provider was seen: the global provider is set once, and a
        #: given one stays, so senders read this attribute and ask ``wanted()`` only before.
        self.recording = False
        # The API's getter makes a global provider from this variable when none is set.
        self._provider_from_environment = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
        _RECORDERS.add(self)

    def _after_fork(self) -> None:
        self._pending.clear()
        self._lock = threading.Lock()  # the parent's drain may have held it at the fork
        self._wake = threading.Event()
        self._woken = False
        self._thread = None

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

    def add(
        self, topic: str, info: SpanInfo, start_ns: int, end_ns: int, type_: str, kind: str,
        partition: int | None,
    ) -> None:
        """Keep one span to record (what the send knew); the span is made off the send path."""
        pending = self._pending
        count = len(pending)
        if count >= MAX_PENDING * FIELDS:
            self.dropped += 1
            return
        # One C call under the GIL: a drain never sees half a span.
        pending += (topic, *info, start_ns, end_ns, type_, kind, partition)
        if count >= (WAKE_AT - 1) * FIELDS:
            if count >= (LAGGING - 1) * FIELDS:
                # The drain thread has not had its turn: drain here, so that no burst handed
                # over at once outgrows a span processor's queue.
                self.drain()
            elif not self._woken:
                self._woken = True
                self._wake.set()
        if self._thread is None:
            self._start_thread()

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(
                    target=self._run, name=f"sagascope-producer-spans-{self.service}", daemon=True
                )
                self._thread.start()
                # Registered at the first span, when the application's TracerProvider most
                # likely exists: atexit runs in reverse order, so the pending spans reach the
                # processors before the provider's own exit hook shuts them down.
                atexit.register(_drain_at_exit, weakref.ref(self))

    def _run(self) -> None:
        wake = self._wake
        while True:
            wake.wait(DRAIN_INTERVAL_S)
            wake.clear()
            self._woken = False
            if self._stopping:
                return
            self.drain()

    def drain(self) -> int:
        """Emit every pending span now; returns how many were emitted. Never raises."""
        with self._lock:
            # Senders only ever append to this one list: take the spans there now and
            # leave whatever a sender adds meanwhile for the next drain.
            pending = self._pending
            taken = len(pending) - len(pending) % FIELDS
            batch = pending[:taken]
            del pending[:taken]
        if not batch:
            return 0
        emitted, part = 0, WAKE_AT * FIELDS
        try:
            for start in range(0, len(batch), part):
                if start:
                    # A batch processor's worker, woken by the part just handed over, gets the
                    # interpreter to export it before the next: handed over in one go, a burst
                    # outran the worker and filled the default 2,048-span queue (1 run in 6).
                    time.sleep(YIELD_S)
                emitted += self._emit(batch[start:start + part])
            return emitted
        except Exception:
            log.exception("could not record %d producer spans", len(batch) // FIELDS - emitted)
            return emitted

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.drain()

    def _emit(self, batch: list[Any]) -> int:
        provider: Any = self._tracer_provider or trace.get_tracer_provider()
        processor = getattr(provider, "_active_span_processor", None)
        if processor is None or not hasattr(provider, "resource"):
            return self._emit_through_tracer(provider, batch)
        # The SDK's own path (Tracer.start_span) would redo per span what is constant here;
        # so would building each span's attributes: spans of one topic, type and saga share
        # all but the message id, so a batch builds them once per such group and copies.
        resource = provider.resource
        on_end = processor.on_end
        new_span, new_context = _new_span, _new_context
        shared: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
        for (topic, trace_id, span_id, parent, message_id, saga, start_ns, end_ns, type_, kind,
             partition) in zip(*[iter(batch)] * FIELDS, strict=True):
            group = (topic, type_, kind, saga, partition)
            found = shared.get(group)
            if found is None:
                found = shared[group] = (
                    f"{topic} send",
                    self._attributes(topic, message_id, saga, type_, kind, partition),
                )
            name, attributes = found
            attributes = attributes.copy()
            attributes[ATTR_MESSAGE_ID] = message_id.decode()
            if new_span is None:
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
                continue
            span = new_span(_SentSpan)
            span._name = name
            span._context = new_context(
                SpanContext, (trace_id, span_id, False, _SAMPLED, DEFAULT_TRACE_STATE, True))
            span._parent = parent
            span._resource = resource
            span._attributes = attributes
            span._start_time = start_ns
            span._end_time = end_ns
            on_end(span)
        return len(batch) // FIELDS

    def _attributes(
        self, topic: str, message_id: bytes, saga: SagaContext | None, type_: str, kind: str,
        partition: int | None,
    ) -> dict[str, Any]:
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
            attributes[ATTR_SAGA_ID] = attributes[ATTR_CONVERSATION_ID] = saga.saga_id
        if saga is not None and saga.saga_type:
            attributes[ATTR_SAGA_TYPE] = saga.saga_type
        return attributes

    def _emit_through_tracer(self, provider: Any, batch: list[Any]) -> int:
        tracer = trace.get_tracer(TRACER_NAME, tracer_provider=provider)
        emitted = 0
        for (topic, trace_id, span_id, parent_context, message_id, saga, start_ns, end_ns, type_,
             kind, partition) in zip(*[iter(batch)] * FIELDS, strict=True):
            # Without a parent, a stand-in carrying the trace id: the span joins that trace.
            parent = NonRecordingSpan(
                parent_context or SpanContext(trace_id, span_id, False, _SAMPLED)
            )
            span = tracer.start_span(
                f"{topic} send",
                context=trace.set_span_in_context(parent),
                kind=SpanKind.PRODUCER,
                attributes=self._attributes(topic, message_id, saga, type_, kind, partition),
                start_time=start_ns,
            )
            if not span.is_recording():
                # A no-op provider records nothing; nothing else in the batch will differ.
                return emitted
            span.end(end_time=end_ns)
            emitted += 1
        return emitted
