"""What an alert sink is, and the engine of the sinks that deliver over the network.

Evaluation never waits on a sink: a :class:`RetryingSink` hands each alert to a background
worker that delivers it with a timeout and retries with exponential backoff, so a dead
endpoint delays only its own deliveries. Nothing is dropped silently: an alert that cannot be
queued or delivered is logged and counted in the sink's ``stats``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol, TypedDict

from sagascope.alerter.exceptions import PermanentDeliveryError
from sagascope.exceptions import ConfigError
from sagascope.queries.alerts import Alert

log = logging.getLogger(__name__)


class AlertSink(Protocol):
    """A destination for alerts. ``send`` never blocks for long and never raises."""

    name: str

    def send(self, alert: Alert) -> None: ...

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything sent so far is delivered or given up; False on timeout."""
        ...

    def close(self, timeout_s: float = 5.0) -> None: ...


@dataclass
class SinkStats:
    """Counters of one sink."""

    delivered: int = 0
    attempts: int = 0
    retried: int = 0
    #: Given up after the last retry, or refused permanently (HTTP 4xx).
    failed: int = 0
    #: Not queued because the queue was full.
    dropped: int = 0


@dataclass(order=True)
class _Pending:
    due: float
    seq: int
    attempt: int = field(compare=False)
    alert: Alert = field(compare=False)


class Delivery(TypedDict, total=False):
    """How a retrying sink delivers (the keyword arguments every one takes; defaults below)."""

    #: Per attempt (``alerts.sink_timeout_s``).
    timeout_s: float
    #: Retries after a failed attempt (``alerts.sink_retries``).
    retries: int
    #: First retry delay, doubling per attempt up to ``backoff_max_s``.
    backoff_s: float
    backoff_max_s: float
    #: Alerts queued or in flight at most; more are dropped (and counted).
    max_queue: int


class RetryingSink:
    """Base of sinks that deliver in a background thread with retries and backoff.

    Subclasses implement ``_deliver(alert)``, raising on failure, within ``timeout_s``.
    """

    name = "retrying"

    def __init__(
        self,
        *,
        timeout_s: float = 5.0,
        retries: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_queue: int = 10000,
    ) -> None:
        if timeout_s <= 0:
            raise ConfigError(f"setting alerts.sink_timeout_s must be > 0, got {timeout_s}")
        if retries < 0:
            raise ConfigError(f"setting alerts.sink_retries must be >= 0, got {retries}")
        if backoff_s <= 0 or backoff_max_s < backoff_s:
            raise ConfigError(
                "settings alerts.retry_backoff_s must be > 0 and "
                f"alerts.retry_backoff_max_s >= it, got {backoff_s} and {backoff_max_s}"
            )
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.max_queue = max_queue
        self.stats = SinkStats()
        self._pending: list[_Pending] = []
        self._in_flight = 0
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    def send(self, alert: Alert) -> None:
        with self._cond:
            if self._closing:
                self.stats.dropped += 1
                log.error("alert sink %s closed; alert %s not sent", self.name, alert.alert_id)
                return
            if len(self._pending) + self._in_flight >= self.max_queue:
                self.stats.dropped += 1
                log.error(
                    "alert sink %s queue full (%d); alert %s for saga %s dropped",
                    self.name, self.max_queue, alert.alert_id, alert.saga_id,
                )
                return
            heapq.heappush(self._pending, _Pending(time.monotonic(), next(self._seq), 0, alert))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name=f"sagascope-alert-{self.name}", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based)."""
        return float(min(self.backoff_max_s, self.backoff_s * (2 ** (attempt - 1))))

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closing and not self._pending:
                        return
                    now = time.monotonic()
                    if self._pending and self._pending[0].due <= now:
                        item = heapq.heappop(self._pending)
                        self._in_flight += 1
                        break
                    wait = self._pending[0].due - now if self._pending else None
                    self._cond.wait(wait)
            try:
                self._attempt(item)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _attempt(self, item: _Pending) -> None:
        self.stats.attempts += 1
        try:
            self._deliver(item.alert)
        except PermanentDeliveryError as exc:
            self.stats.failed += 1
            log.error(
                "alert sink %s refused alert %s for saga %s: %s",
                self.name, item.alert.alert_id, item.alert.saga_id, exc,
            )
            return
        except Exception as exc:
            attempt = item.attempt + 1
            if attempt > self.retries or self._closing:
                self.stats.failed += 1
                log.error(
                    "alert sink %s gave up on alert %s for saga %s after %d attempt(s): %s",
                    self.name, item.alert.alert_id, item.alert.saga_id, attempt, exc,
                )
                return
            delay = self.backoff(attempt)
            self.stats.retried += 1
            log.warning(
                "alert sink %s failed for alert %s (attempt %d): %s; retrying in %.2fs",
                self.name, item.alert.alert_id, attempt, exc, delay,
            )
            with self._cond:
                heapq.heappush(
                    self._pending,
                    _Pending(time.monotonic() + delay, next(self._seq), attempt, item.alert),
                )
            return
        self.stats.delivered += 1

    def _deliver(self, alert: Alert) -> None:
        raise NotImplementedError

    def flush(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is due within ``timeout_s``; pending retries are given up after it."""
        self.flush(timeout_s)
        with self._cond:
            self._closing = True
            left = len(self._pending)
            if left:
                self.stats.failed += left
                log.error("alert sink %s closed with %d undelivered alert(s)", self.name, left)
                self._pending.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._release()

    def _release(self) -> None:
        """Free the sink's client."""
