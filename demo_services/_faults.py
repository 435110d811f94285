"""Fault injection: per-service failure, latency, drop, duplicate and clock-skew settings.

Every decision is a pure function of the seed and the message's identity (saga id, type,
how many times this service sent that type for that saga), never of thread timing, so the
ground truth can predict each saga's fate and a run with the same seed repeats itself.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from kafka.future import Future

from sagascope.settings import DemoSettings

log = logging.getLogger(__name__)

#: Services of the traffic generator: the saga's first message is never dropped, or the
#: saga would not exist anywhere but in the ground truth.
CLIENT_SERVICES = frozenset({"storefront", "checkout", "shop", "travel-portal"})


def roll(seed: int, *parts: object) -> float:
    """A uniform number in [0, 1) determined by the seed and ``parts`` alone."""
    text = "\x1f".join([str(seed), *map(str, parts)]).encode()
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class ServiceFaultConfig:
    """The resolved faults of one service."""

    service: str
    seed: int
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    error_rate: float = 0.0
    latency_ms: float = 0.0
    clock_skew_s: float = 0.0

    def drops(self, saga_id: str, type_: str, occurrence: int) -> bool:
        """Whether this service loses its ``occurrence``-th ``type_`` message of the saga."""
        if self.service in CLIENT_SERVICES or self.drop_rate <= 0:
            return False
        return roll(self.seed, "drop", self.service, saga_id, type_, occurrence) < self.drop_rate

    def duplicates(self, saga_id: str, type_: str, occurrence: int) -> bool:
        """Whether this service sends that message twice (same ``ce_id``)."""
        if self.duplicate_rate <= 0:
            return False
        return roll(self.seed, "dup", self.service, saga_id, type_, occurrence) < (
            self.duplicate_rate
        )

    def fails(self, saga_id: str, type_: str, attempt: int) -> bool:
        """Whether handling (or, for airline/hotel, booking) attempt ``attempt`` fails."""
        if self.error_rate <= 0:
            return False
        return roll(self.seed, "error", self.service, saga_id, type_, attempt) < self.error_rate

    def latency_s(self, saga_id: str, type_: str) -> float:
        """Processing delay: uniform in [0.5, 1.5] x ``latency_ms``."""
        if self.latency_ms <= 0:
            return 0.0
        return self.latency_ms / 1000.0 * (0.5 + roll(self.seed, "lat", saga_id, type_))

    def now(self) -> float:
        """This service's wall clock, skewed."""
        return time.time() + self.clock_skew_s


def resolve_faults(settings: DemoSettings, service: str) -> ServiceFaultConfig:
    """The fault config of ``service``: ``[demo]`` defaults, then its ``service_faults`` entry."""
    values: dict[str, Any] = {
        "drop_rate": settings.drop_rate,
        "duplicate_rate": settings.duplicate_rate,
        "error_rate": settings.error_rate,
        "latency_ms": settings.latency_ms,
        "clock_skew_s": settings.clock_skew_s if service == settings.skewed_service else 0.0,
    }
    for override in settings.service_faults:
        if override.service == service:
            for name in values:
                value = getattr(override, name)
                if value is not None:
                    values[name] = value
    for name in ("drop_rate", "duplicate_rate", "error_rate"):
        if not 0.0 <= values[name] <= 1.0:
            from sagascope.exceptions import ConfigError

            raise ConfigError(f"demo.{name} for {service} must be within [0, 1], got {values[name]}")
    return ServiceFaultConfig(service=service, seed=settings.seed, **values)


#: Keys a service remembers (sends and handlings per saga and type) before forgetting the oldest.
MEMORY_KEYS = 200_000


class BoundedCounter:
    """Counts per key, forgetting the least recently counted keys beyond ``capacity``.

    A demo left running for days must not grow without bound; a saga's keys are only
    needed while it runs, which is seconds to minutes.
    """

    def __init__(self, capacity: int = MEMORY_KEYS) -> None:
        self.capacity = capacity
        self._counts: OrderedDict[object, int] = OrderedDict()

    def add(self, key: object) -> int:
        """Count ``key`` once more; returns its count."""
        count = self._counts.pop(key, 0) + 1
        self._counts[key] = count
        if len(self._counts) > self.capacity:
            self._counts.popitem(last=False)
        return count

    def get(self, key: object) -> int:
        return self._counts.get(key, 0)

    def __len__(self) -> int:
        return len(self._counts)


def _header(headers: list[tuple[str, bytes]] | None, name: str) -> str:
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace")
    return ""


class FaultyProducer:
    """A KafkaProducer stand-in that loses and repeats sends, the way a flaky network does.

    It sits *below* the instrumented producer, so a duplicate carries the very same headers
    (same ``ce_id``) and a drop is a message that was traced but never reached the broker.
    """

    def __init__(self, producer: Any, faults: ServiceFaultConfig) -> None:
        self._producer = producer
        self.faults = faults
        self._sent = BoundedCounter()
        self._lock = threading.Lock()
        self.dropped = 0
        self.duplicated = 0

    def __getattr__(self, name: str) -> Any:
        # config, metrics, partitions_for ...: whatever the wrapper reads from a real producer.
        return getattr(self._producer, name)

    def copies(self, headers: Any) -> int:
        """How many times the message goes out: 0 (dropped), 1, or 2 (duplicated)."""
        saga_id = _header(headers, "ce_sagaid")
        type_ = _header(headers, "ce_type")
        if not (saga_id and type_):
            return 1
        with self._lock:
            occurrence = self._sent.add((saga_id, type_))
        if self.faults.drops(saga_id, type_, occurrence):
            self.dropped += 1
            log.info("fault: dropped %s of saga %s from %s", type_, saga_id, self.faults.service)
            return 0
        if self.faults.duplicates(saga_id, type_, occurrence):
            self.duplicated += 1
            return 2
        return 1

    def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
             partition: int | None = None, timestamp_ms: int | None = None) -> Any:
        copies = self.copies(headers)
        if copies == 0:
            return Future().success(None)
        for _ in range(copies - 1):
            self._producer.send(topic, value=value, key=key, headers=headers,
                                partition=partition, timestamp_ms=timestamp_ms)
        return self._producer.send(topic, value=value, key=key, headers=headers,
                                   partition=partition, timestamp_ms=timestamp_ms)

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        self._producer.close(timeout)


class FaultyConfluentProducer(FaultyProducer):
    """The same faults below a ``confluent_kafka.Producer``: ``produce`` is what loses and repeats."""

    def produce(self, topic: str, value: Any = None, key: Any = None, **kwargs: Any) -> None:
        for _ in range(self.copies(kwargs.get("headers"))):
            self._producer.produce(topic, value=value, key=key, **kwargs)

    def flush(self, timeout: float | None = None) -> int:  # type: ignore[override]
        return int(self._producer.flush() if timeout is None else self._producer.flush(timeout))


class FaultyAioProducer(FaultyProducer):
    """The same faults below an ``aiokafka.AIOKafkaProducer``: ``send`` is a coroutine."""

    async def send(
        self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
        partition: int | None = None, timestamp_ms: int | None = None,
    ) -> Any:
        delivery = None
        for _ in range(self.copies(headers)):
            delivery = await self._producer.send(topic, value=value, key=key, headers=headers,
                                                 partition=partition, timestamp_ms=timestamp_ms)
        if delivery is None:  # dropped: a delivery that resolves at once, as if it went out
            import asyncio

            delivery = asyncio.get_running_loop().create_future()
            delivery.set_result(None)
        return delivery
