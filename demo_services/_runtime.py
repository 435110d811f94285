"""How a demo service runs: its own consumer group in a thread, our decorator on its handler.

A service runs on one of the three Python Kafka clients (``client``): kafka-python, or
confluent-kafka, or aiokafka (an asyncio loop in the service's thread, with an ``async``
handler that awaits its sends), so the demo's sagas cross all three. Each service consumes
its topics with its own consumer group, handles records through ``saga_handler`` (so the
handler span and the saga context come from the message), sends through
``InstrumentedProducer`` over a :class:`FaultyProducer`, drops redelivered messages it has
already handled (idempotent consumer: duplicates never fan out), retries a handler run that
failed transiently, and fires timers (the payment flow's long wait) in the same thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kafka import KafkaConsumer, KafkaProducer

from sagascope.demo_services._faults import (
    BoundedCounter,
    FaultyAioProducer,
    FaultyConfluentProducer,
    FaultyProducer,
    ServiceFaultConfig,
)
from sagascope.demo_services._topics import NOTIFICATIONS_COMMANDS, topic
from sagascope.instrumentation import InstrumentedProducer, contract, saga_handler

log = logging.getLogger(__name__)

KAFKA_PYTHON = "kafka-python"
CONFLUENT = "confluent-kafka"
AIOKAFKA = "aiokafka"
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
class ClientConfigs:
    """Connection settings (TLS, SASL) for each Kafka client, in that client's own names.

    Built by the application from ``[broker]`` (``sagascope.connections``); empty for a
    plaintext broker. Keys a service sets itself (bootstrap servers, client id) win.
    """

    kafka_python: Mapping[str, Any] = field(default_factory=dict)
    confluent: Mapping[str, Any] = field(default_factory=dict)
    aiokafka: Mapping[str, Any] = field(default_factory=dict)


def _merged(config: Mapping[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    return {**config, **own}


@dataclass(frozen=True)
class ServiceEnv:
    """What the runner gives every service."""

    bootstrap_servers: str
    topic_prefix: str
    faults: ServiceFaultConfig
    settings: Any  # DemoSettings
    tracer_provider: Any = None
    client_id: str = "sagascope-demo"
    clients: ClientConfigs = field(default_factory=ClientConfigs)


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
    #: The Kafka client this service is written with.
    client: ClassVar[str] = KAFKA_PYTHON
    #: The forward steps it takes: message type -> (topic, command) that takes the saga on.
    next_commands: ClassVar[Mapping[str, tuple[str, str]]] = {}

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
        self._kafka: Any = None
        self._faulty: Any = None
        self._producer: Any = None
        self._pending_sends: list[Any] = []
        self._handle: Callable[[Any], Any] = self._handle_record
        self._handle_timer: Callable[[Any], Any] = self._handle_timer_record
        if self.client == CONFLUENT:
            from confluent_kafka import Producer

            self._use_producer(Producer(_merged(env.clients.confluent, {
                "bootstrap.servers": env.bootstrap_servers, "linger.ms": 5,
                "client.id": f"{env.client_id}-{self.name}", "logger": _librdkafka_log,
            })), FaultyConfluentProducer)
        elif self.client == KAFKA_PYTHON:
            self._use_producer(KafkaProducer(**_merged(env.clients.kafka_python, {
                "bootstrap_servers": env.bootstrap_servers,
                "client_id": f"{env.client_id}-{self.name}", "linger_ms": 5,
            })), FaultyProducer)
        # aiokafka's producer needs the service's event loop: made when the thread starts.
        if self.instrumented:
            decorate = saga_handler(
                self.name, consumer_group=self.group_id, tracer_provider=env.tracer_provider
            )
            if self.client == AIOKAFKA:
                self._handle = decorate(self._handle_record_async)
                self._handle_timer = decorate(self._handle_timer_record_async)
            else:
                self._handle = decorate(self._handle_record)
                self._handle_timer = decorate(self._handle_timer_record)
        self.handled = 0
        self.duplicates_skipped = 0
        self.failed = 0

    @property
    def producer_client(self) -> str | None:
        """The client the instrumented producer recognised (None before it exists, or legacy)."""
        return self._producer.client.value if self._producer is not None else None

    def _use_producer(self, kafka: Any, faulty: type[FaultyProducer]) -> None:
        self._kafka = kafka
        self._faulty = faulty(kafka, self.faults)
        if self.instrumented:
            self._producer = InstrumentedProducer(
                self._faulty, service=self.name, tracer_provider=self.env.tracer_provider
            )

    # -- what services implement and call ---------------------------------------------------

    def on_message(self, message: Message) -> None:
        raise NotImplementedError

    def on_timer(self, message: Message) -> None:
        """A timer set with :meth:`schedule` for ``message`` is due."""

    def send(self, topic_name: str, type_: str, data: dict[str, Any], *, saga_id: str,
             kind: str = "event", step: str | None = None, saga_status: str | None = None,
             compensates: str | None = None) -> None:
        """Send one message with the contract headers, at this service's (skewed) clock."""
        sending = self._producer.send(
            topic(self.env.topic_prefix, topic_name), value=data, key=saga_id.encode(),
            type=type_, kind=kind, step=step, saga_status=saga_status,
            compensates=compensates, event_time=self.faults.now(),
        )
        if self.client == AIOKAFKA:
            # A coroutine: the async handler awaits it before it returns.
            self._pending_sends.append(sending)

    def command(self, topic_name: str, command: str, data: dict[str, Any], *, saga_id: str,
                compensates: str | None = None) -> None:
        """Send a command; the saga step it asks for is named after it."""
        self.send(topic_name, command, data, saga_id=saga_id, kind="command", step=command,
                  compensates=compensates)

    def take_next_step(self, message: Message) -> bool:
        """Send the command :attr:`next_commands` names for ``message``; False where it names none."""
        step = self.next_commands.get(message.type)
        if step is None:
            return False
        topic_name, command = step
        self.command(topic_name, command, message.data, saga_id=message.saga_id)
        return True

    def compensate(self, topic_name: str, command: str, data: dict[str, Any], *, saga_id: str,
                   compensates: str) -> None:
        """Send the command that undoes step ``compensates``: the saga is compensating from here."""
        self.send(topic_name, command, data, saga_id=saga_id, kind="command", step=command,
                  saga_status="compensating", compensates=compensates)

    def notify_customer(self, saga_id: str, customer_id: object, template: str,
                        outcome: str) -> None:
        """Ask the notification service to tell the customer how the saga ``outcome`` ended."""
        self.command(NOTIFICATIONS_COMMANDS, "NotifyCustomer",
                     {"order_id": saga_id, "customer_id": customer_id, "template": template,
                      "outcome": outcome}, saga_id=saga_id)

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
        if self.client == AIOKAFKA:
            try:
                asyncio.run(self._run_async())
            except Exception:
                log.exception("demo service %s crashed", self.name)
            return
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
            self._faulty.flush(10)
            if self.client == KAFKA_PYTHON:
                self._kafka.close(10)

    def _consumer(self) -> Any:
        settings = self.env.settings
        topics = [topic(self.env.topic_prefix, name) for name in self.topics]
        if self.client == CONFLUENT:
            from confluent_kafka import Consumer

            # librdkafka wants max.poll.interval.ms >= session.timeout.ms; the join waits for it.
            timeout_ms = max(settings.max_poll_interval_ms, 6000)
            consumer = Consumer(_merged(self.env.clients.confluent, {
                "bootstrap.servers": self.env.bootstrap_servers,
                "client.id": f"{self.env.client_id}-{self.name}", "group.id": self.group_id,
                "auto.offset.reset": "earliest", "enable.auto.commit": True,
                "auto.commit.interval.ms": 1000, "max.poll.interval.ms": timeout_ms,
                "session.timeout.ms": timeout_ms, "heartbeat.interval.ms": 1000,
                "logger": _librdkafka_log,
            }))
            consumer.subscribe(topics)
            return consumer
        return KafkaConsumer(*topics, **_merged(self.env.clients.kafka_python, {
            "bootstrap_servers": self.env.bootstrap_servers,
            "client_id": f"{self.env.client_id}-{self.name}",
            "group_id": self.group_id,
            "auto_offset_reset": "earliest",
            "enable_auto_commit": True,
            "auto_commit_interval_ms": 1000,
            "max_poll_interval_ms": settings.max_poll_interval_ms,
            "session_timeout_ms": max(settings.max_poll_interval_ms, 6000),
            "heartbeat_interval_ms": 1000,
        }))

    def _poll(self, consumer: Any) -> list[Any]:
        if self.client == CONFLUENT:
            messages = consumer.consume(num_messages=500, timeout=0.1)
            for message in messages:
                if message.error() is not None:
                    log.debug("%s: consumer error %s", self.name, message.error())
            return [m for m in messages if m.error() is None]
        return [r for records in consumer.poll(timeout_ms=100).values() for r in records]

    def _loop(self, consumer: Any) -> None:
        while not self._stop.is_set():
            records = self._poll(consumer)
            if not self._ready.is_set() and consumer.assignment():
                self._ready.set()
            for record in records:
                if self._stop.is_set():
                    return
                self._process(record)
            self._fire_timers()

    async def _run_async(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        settings = self.env.settings
        clients = self.env.clients
        kafka = AIOKafkaProducer(**_merged(clients.aiokafka, {
            "bootstrap_servers": self.env.bootstrap_servers,
            "client_id": f"{self.env.client_id}-{self.name}", "linger_ms": 5,
        }))
        await kafka.start()
        self._use_producer(kafka, FaultyAioProducer)
        consumer = AIOKafkaConsumer(
            *(topic(self.env.topic_prefix, name) for name in self.topics),
            **_merged(clients.aiokafka, {
                "bootstrap_servers": self.env.bootstrap_servers,
                "client_id": f"{self.env.client_id}-{self.name}", "group_id": self.group_id,
                "auto_offset_reset": "earliest", "enable_auto_commit": True,
                "auto_commit_interval_ms": 1000,
                "max_poll_interval_ms": settings.max_poll_interval_ms,
                "rebalance_timeout_ms": settings.max_poll_interval_ms,
                "session_timeout_ms": max(settings.max_poll_interval_ms, 6000),
                "heartbeat_interval_ms": 1000,
            }),
        )
        try:
            await consumer.start()
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                if not self._ready.is_set() and consumer.assignment():
                    self._ready.set()
                for records in batches.values():
                    for record in records:
                        if self._stop.is_set():
                            return
                        await self._process_async(record)
                await self._fire_timers_async()
        finally:
            try:
                await consumer.stop()
            finally:
                await kafka.flush()
                await kafka.stop()

    def _decode(self, record: Any) -> Message | None:
        if self.client == CONFLUENT:
            raw_headers, value = record.headers(), record.value()
        else:
            raw_headers, value = record.headers, record.value
        headers, _errors = contract.decode_headers(raw_headers)
        try:
            data = json.loads(value) if value else {}
        except (ValueError, UnicodeDecodeError):
            log.warning("%s: undecodable record with headers %s", self.name, headers)
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

    def _admit(self, record: Any) -> Message | None:
        """The decoded message to handle now; None for one to skip (foreign, duplicate, stopping)."""
        message = self._decode(record)
        if message is None:
            return None
        if self.saga_types and message.saga_type and message.saga_type not in self.saga_types:
            return None
        if message.message_id:
            if message.message_id in self._seen:
                self.duplicates_skipped += 1
                log.info("%s: skipped duplicate %s of saga %s", self.name, message.type,
                         message.saga_id)
                return None
            self._seen[message.message_id] = None
            if len(self._seen) > _SEEN_CAPACITY:
                self._seen.popitem(last=False)
        self._attempts.add((message.saga_id, message.type))
        delay = self.faults.latency_s(message.saga_id, message.type)
        if delay and self._stop.wait(delay):
            return None
        self._current = message
        return message

    def _crashes(self, message: Message, run: int) -> bool:
        return self.injects_crashes and run < MAX_HANDLER_ATTEMPTS and self.faults.fails(
            message.saga_id, f"crash:{message.type}:{self.attempt(message)}", run
        )

    # The synchronous and the asyncio loop differ only in awaiting the handler: what a run
    # means (retry an injected failure, count a success, log any other failure) is _runs'.
    def _process(self, record: Any) -> None:
        for run in self._runs(record):
            with run:
                self._handle(record)

    async def _process_async(self, record: Any) -> None:
        for run in self._runs(record):
            with run:
                await self._handle(record)

    def _runs(self, record: Any) -> Iterator[_HandlerRun]:
        """The runs of the handler on ``record``, each to be made inside its ``with``: none for
        a record skipped, another after an injected failure (up to MAX_HANDLER_ATTEMPTS)."""
        message = self._admit(record)
        if message is None:
            return
        for number in range(1, MAX_HANDLER_ATTEMPTS + 1):
            # A crash goes through the decorated handler: the failed run is an errored span.
            self._crash_next = self._crashes(message, number)
            run = _HandlerRun(self, message, number)
            yield run
            if not run.injected_failure:
                return

    def _handle_record(self, record: Any) -> None:
        if self._crash_next:
            self._crash_next = False
            raise InjectedFailure(f"{self.name}: injected transient failure")
        assert self._current is not None
        self.on_message(self._current)

    def _handle_timer_record(self, record: Any) -> None:
        assert self._current is not None
        self.on_timer(self._current)

    async def _handle_record_async(self, record: Any) -> None:
        try:
            self._handle_record(record)
        finally:
            await self._await_sends()

    async def _handle_timer_record_async(self, record: Any) -> None:
        try:
            self._handle_timer_record(record)
        finally:
            await self._await_sends()

    async def _await_sends(self) -> None:
        pending, self._pending_sends = self._pending_sends, []
        for sending in pending:
            await sending

    def _due_timers(self) -> list[Message]:
        now = time.monotonic()
        due = []
        while self._timers and self._timers[0][0] <= now:
            due.append(heapq.heappop(self._timers)[2])
        return due

    def _fire_timers(self) -> None:
        for message in self._due_timers():
            with self._timer_run(message):
                self._handle_timer(message.record)

    async def _fire_timers_async(self) -> None:
        for message in self._due_timers():
            with self._timer_run(message):
                await self._handle_timer(message.record)

    @contextlib.contextmanager
    def _timer_run(self, message: Message) -> Iterator[None]:
        self._current = message
        try:
            yield
        except Exception:
            self.failed += 1
            log.exception("%s: timer failed for saga %s", self.name, message.saga_id)


class _HandlerRun:
    """One run of a service's handler on a message, made as ``with run: handler(record)``:
    counts a success, and logs and swallows a failure (noting whether it was injected)."""

    def __init__(self, service: DemoService, message: Message, number: int) -> None:
        self.service = service
        self.message = message
        self.number = number
        self.injected_failure = False

    def __enter__(self) -> None:
        pass

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        if exc_type is None:
            self.service.handled += 1
            return False
        service, message = self.service, self.message
        if issubclass(exc_type, InjectedFailure):
            self.injected_failure = True
            log.info("%s: injected failure handling %s of saga %s (run %d), retrying",
                     service.name, message.type, message.saga_id, self.number)
            return True
        if issubclass(exc_type, Exception):
            service.failed += 1
            log.exception("%s: handler failed on %s of saga %s", service.name, message.type,
                          message.saga_id)
            return True
        return False


#: librdkafka's own log lines (connection chatter) go through logging, not to stderr.
_librdkafka_log = logging.getLogger("sagascope.demo_services.librdkafka")
