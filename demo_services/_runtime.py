"""How a demo service runs: its own consumer group in a thread, our decorator on its handler.

Each service consumes its topics with its own consumer group, handles records through
``saga_handler`` (so the handler span and the saga context come from the message), sends
through ``InstrumentedProducer`` over a :class:`FaultyProducer`, drops redelivered messages
it has already handled (idempotent consumer: duplicates never fan out), retries a handler run
that failed transiently, and fires timers (the payment flow's long wait) in the same thread.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kafka import KafkaConsumer, KafkaProducer
from sagascope.demo_services._faults import BoundedCounter, FaultyProducer, ServiceFaultConfig
from sagascope.demo_services._topics import topic
from sagascope.instrumentation import InstrumentedProducer, contract, saga_handler

log = logging.getLogger(__name__)

#: Handler runs per message before giving up on injected transient errors.
MAX_HANDLER_ATTEMPTS = 5
_SEEN_CAPACITY = 100_000


class InjectedFailure(RuntimeError):
    """A transient failure injected by the demo's fault settings; the run is retried."""


@dataclass
class Message:
    """A consumed record, decoded: what a service's handler looks at."""

    type: str
    saga_id: str
    saga_type: str
    message_id: str
    data: dict[str, Any]
    record: Any = field(repr=False, default=None)


@dataclass(frozen=True)
class ServiceEnv:
    """What the runner gives every service."""

    bootstrap_servers: str
    topic_prefix: str
    faults: ServiceFaultConfig
    settings: Any  # DemoSettings
    tracer_provider: Any = None
    client_id: str = "sagascope-demo"


class DemoService:
    """Base of the demo services: subclasses set ``name``, ``topics`` and ``on_message``."""

    name: ClassVar[str]
    topics: ClassVar[tuple[str, ...]]
    #: Saga types this service takes part in; messages of other sagas are skipped.
    saga_types: ClassVar[frozenset[str]] = frozenset()
    #: Whether injected errors crash handler runs (airline and hotel report them instead).
    injects_crashes: ClassVar[bool] = True
    #: False for the legacy service: no decorator, no trace headers on what it sends.
    instrumented: ClassVar[bool] = True

    def __init__(self, env: ServiceEnv) -> None:
        self.env = env
        self.faults = env.faults
        self.group_id = f"{env.topic_prefix}demo-{self.name}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._timers: list[tuple[float, int, Message]] = []
        self._timer_seq = itertools.count()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._attempts = BoundedCounter()
        self._current: Message | None = None
        self._crash_next = False
        self._kafka = KafkaProducer(
            bootstrap_servers=env.bootstrap_servers, client_id=f"{env.client_id}-{self.name}",
            linger_ms=5,
        )
        self._faulty = FaultyProducer(self._kafka, self.faults)
        self._producer: Any = None
        self._handle: Callable[[Any], Any] = self._handle_record
        self._handle_timer: Callable[[Any], Any] = self._handle_timer_record
        if self.instrumented:
            self._producer = InstrumentedProducer(
                self._faulty, self.name, tracer_provider=env.tracer_provider
            )
            decorate = saga_handler(
                self.name, consumer_group=self.group_id, tracer_provider=env.tracer_provider
            )
            self._handle = decorate(self._handle_record)
            self._handle_timer = decorate(self._handle_timer_record)
        self.handled = 0
        self.duplicates_skipped = 0
        self.failed = 0

    # -- what services implement and call ---------------------------------------------------

    def on_message(self, message: Message) -> None:
        raise NotImplementedError

    def on_timer(self, message: Message) -> None:
        """A timer set with :meth:`schedule` for ``message`` is due."""

    def send(self, topic_name: str, type_: str, data: dict[str, Any], *, saga_id: str,
             kind: str = "event", step: str | None = None, saga_status: str | None = None,
             compensates: str | None = None) -> None:
        """Send one message with the contract headers, at this service's (skewed) clock."""
        self._producer.send(
            topic(self.env.topic_prefix, topic_name), value=data, key=saga_id.encode(),
            type=type_, kind=kind, step=step, saga_status=saga_status,
            compensates=compensates, event_time=self.faults.now(),
        )

    def send_raw(self, topic_name: str, data: dict[str, Any], *, key: str) -> None:
        """Send bare JSON, no headers at all: how the legacy service talks."""
        self._faulty.send(topic(self.env.topic_prefix, topic_name),
                          value=json.dumps(data).encode(), key=key.encode())

    def schedule(self, delay_s: float, message: Message) -> None:
        """Call :meth:`on_timer` with ``message`` in this service's thread after ``delay_s``."""
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._timer_seq), message))

    def attempt(self, message: Message) -> int:
        """How many times this service has handled ``message.type`` for this saga, this one included."""
        return self._attempts.get((message.saga_id, message.type))

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"demo-{self.name}", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout_s: float) -> bool:
        """Whether the consumer got its partitions within ``timeout_s``."""
        return self._ready.wait(timeout_s)

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float = 15.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("demo service %s did not stop within %.0f s", self.name, timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        consumer = None
        try:
            consumer = self._consumer()
            self._loop(consumer)
        except Exception:
            log.exception("demo service %s crashed", self.name)
        finally:
            if consumer is not None:
                try:
                    consumer.close()
                except Exception:
                    log.exception("closing the consumer of %s", self.name)
            self._kafka.flush(10)
            self._kafka.close(10)

    def _consumer(self) -> Any:
        settings = self.env.settings
        return KafkaConsumer(
            *(topic(self.env.topic_prefix, name) for name in self.topics),
            bootstrap_servers=self.env.bootstrap_servers,
            client_id=f"{self.env.client_id}-{self.name}",
            group_id=self.group_id,
            auto_offset_reset="earliest",
            enable_auto_commit=True,
            auto_commit_interval_ms=1000,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            session_timeout_ms=max(settings.max_poll_interval_ms, 6000),
            heartbeat_interval_ms=1000,
        )

    def _loop(self, consumer: Any) -> None:
        while not self._stop.is_set():
            batches = consumer.poll(timeout_ms=100)
            if not self._ready.is_set() and consumer.assignment():
                self._ready.set()
            for records in batches.values():
                for record in records:
                    if self._stop.is_set():
                        return
                    self._process(record)
            self._fire_timers()

    def _decode(self, record: Any) -> Message | None:
        headers, _errors = contract.decode_headers(record.headers)
        try:
            data = json.loads(record.value) if record.value else {}
        except (ValueError, UnicodeDecodeError):
            log.warning("%s: undecodable record %s/%s@%s", self.name, record.topic,
                        record.partition, record.offset)
            return None
        if not isinstance(data, dict):
            return None
        return Message(
            type=headers.get("ce_type") or str(data.get("event", "")),
            saga_id=headers.get("ce_sagaid") or str(data.get("orderRef", "")),
            saga_type=headers.get("ce_sagatype", ""),
            message_id=headers.get("ce_id", ""),
            data=data,
            record=record,
        )

    def _process(self, record: Any) -> None:
        message = self._decode(record)
        if message is None:
            return
        if self.saga_types and message.saga_type and message.saga_type not in self.saga_types:
            return
        if message.message_id:
            if message.message_id in self._seen:
                self.duplicates_skipped += 1
                log.info("%s: skipped duplicate %s of saga %s", self.name, message.type,
                         message.saga_id)
                return
            self._seen[message.message_id] = None
            if len(self._seen) > _SEEN_CAPACITY:
                self._seen.popitem(last=False)
        self._attempts.add((message.saga_id, message.type))
        delay = self.faults.latency_s(message.saga_id, message.type)
        if delay and self._stop.wait(delay):
            return
        self._current = message
        for run in range(1, MAX_HANDLER_ATTEMPTS + 1):
            try:
                if self.injects_crashes and run < MAX_HANDLER_ATTEMPTS and self.faults.fails(
                    message.saga_id, f"crash:{message.type}:{self.attempt(message)}", run
                ):
                    self._handle_crash(record)
                else:
                    self._handle(record)
                self.handled += 1
                return
            except InjectedFailure:
                log.info("%s: injected failure handling %s of saga %s (run %d), retrying",
                         self.name, message.type, message.saga_id, run)
            except Exception:
                self.failed += 1
                log.exception("%s: handler failed on %s of saga %s", self.name, message.type,
                              message.saga_id)
                return

    def _handle_crash(self, record: Any) -> None:
        # Through the decorated handler, so the failed run shows as an errored span.
        self._crash_next = True
        self._handle(record)

    def _handle_record(self, record: Any) -> None:
        if self._crash_next:
            self._crash_next = False
            raise InjectedFailure(f"{self.name}: injected transient failure")
        assert self._current is not None
        self.on_message(self._current)

    def _handle_timer_record(self, record: Any) -> None:
        assert self._current is not None
        self.on_timer(self._current)

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _due, _seq, message = heapq.heappop(self._timers)
            self._current = message
            try:
                self._handle_timer(message.record)
            except Exception:
                self.failed += 1
                log.exception("%s: timer failed for saga %s", self.name, message.saga_id)
