"""Where alerts go: the log, a webhook (JSON POST), a Kafka topic, Alertmanager; several at once.

Evaluation never waits on a sink: the webhook and Kafka sinks hand each alert to a background
worker that delivers it with a timeout and retries with exponential backoff, so a dead
endpoint delays only its own deliveries. Nothing is dropped silently: an alert that cannot be
queued or delivered is logged and counted in the sink's ``stats``.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sagascope.alerter.exceptions import PermanentDeliveryError
from sagascope.queries.alerts import STATE_OPEN, Alert

from sagascope.exceptions import ConfigError
from sagascope.settings import AlertSettings

log = logging.getLogger(__name__)

#: Kafka header ``ce_type`` of alert records, so consumers can tell alert versions apart.
ALERT_EVENT_TYPE = "sagascope.alert.v1"



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


class LogSink:
    """Alerts as log events: WARNING when opened, INFO when resolved."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log
        self.stats = SinkStats()

    def send(self, alert: Alert) -> None:
        try:
            if alert.state == STATE_OPEN:
                self._log.warning(
                    "alert opened saga_id=%s saga_type=%s step=%s waiting_for=%s since=%s "
                    "silent_s=%.1f threshold_s=%.1f link=%s",
                    alert.saga_id, alert.saga_type, alert.step, alert.waiting_for,
                    alert.since.isoformat(), alert.silent_s, alert.threshold_s, alert.link,
                )
            else:
                self._log.info(
                    "alert resolved saga_id=%s saga_type=%s step=%s resolution=%s",
                    alert.saga_id, alert.saga_type, alert.step, alert.resolution,
                )
            self.stats.delivered += 1
        except Exception:  # a logging handler failing must not stop evaluation
            self.stats.failed += 1

    def flush(self, timeout_s: float) -> bool:
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Nothing to release."""


@dataclass(order=True)
class _Pending:
    due: float
    seq: int
    attempt: int = field(compare=False)
    alert: Alert = field(compare=False)


class RetryingSink:
    """Base of sinks that deliver in a background thread with retries and backoff.

    Subclasses implement ``_deliver(alert)``, raising on failure.
    """

    name = "retrying"

    def __init__(
        self,
        *,
        retries: int,
        backoff_s: float,
        backoff_max_s: float,
        max_queue: int = 10000,
    ) -> None:
        if retries < 0:
            raise ConfigError(f"setting alerts.sink_retries must be >= 0, got {retries}")
        if backoff_s <= 0 or backoff_max_s < backoff_s:
            raise ConfigError(
                "settings alerts.retry_backoff_s must be > 0 and "
                f"alerts.retry_backoff_max_s >= it, got {backoff_s} and {backoff_max_s}"
            )
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


class WebhookSink(RetryingSink):
    """POSTs each alert as JSON to a URL; retries on connection errors, 5xx, 408 and 429."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_queue: int = 10000,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"setting alerts.webhook_url must be an http(s) URL, got {url!r}")
        if timeout_s <= 0:
            raise ConfigError(f"setting alerts.sink_timeout_s must be > 0, got {timeout_s}")
        super().__init__(
            retries=retries, backoff_s=backoff_s, backoff_max_s=backoff_max_s, max_queue=max_queue
        )
        self.url = url
        self.timeout_s = timeout_s

    def _deliver(self, alert: Alert) -> None:
        post_json(self.url, alert.to_json(), self.timeout_s)


def post_json(url: str, document: Any, timeout_s: float) -> None:
    """POST ``document`` as JSON (the webhook and Alertmanager sinks).

    Raises:
        PermanentDeliveryError: the receiver refused it for good (a 4xx other than 408/429).
        OSError: anything else, which the sink retries with backoff.
    """
    body = json.dumps(document, separators=(",", ":")).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "sagascope-alerter"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            detail = exc.read()[:300].decode("utf-8", "replace")
            raise PermanentDeliveryError(f"HTTP {exc.code}: {detail}") from exc
        raise


class KafkaSink(RetryingSink):
    """Produces each alert as JSON to a topic, keyed by saga id."""

    name = "kafka"

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        client_id: str = "sagascope-alerter",
        timeout_s: float = 5.0,
        retries: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_queue: int = 10000,
        client_config: Mapping[str, Any] | None = None,
    ) -> None:
        if not bootstrap_servers:
            raise ConfigError("the kafka alert sink needs broker.bootstrap_servers")
        if not topic:
            raise ConfigError("setting alerts.kafka_topic must not be empty")
        super().__init__(
            retries=retries, backoff_s=backoff_s, backoff_max_s=backoff_max_s, max_queue=max_queue
        )
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.client_id = client_id
        self.timeout_s = timeout_s
        #: kafka-python TLS/SASL arguments (``sagascope.connections.kafka_python_config``).
        self.client_config = dict(client_config or {})
        self._producer: Any = None

    def _connect(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer

            from sagascope.embedded import create_topics

            # The alert topic is ours: create it so the first alert does not wait on
            # auto-creation (which brokers may disable).
            create_topics(
                self.bootstrap_servers, {self.topic: 1}, timeout_s=self.timeout_s,
                client_config=self.client_config,
            )
            self._producer = KafkaProducer(**{
                **self.client_config,
                "bootstrap_servers": self.bootstrap_servers,
                "client_id": self.client_id,
                "acks": "all",
                "max_block_ms": int(self.timeout_s * 1000),
                "request_timeout_ms": int(self.timeout_s * 1000),
            })
        return self._producer

    def _deliver(self, alert: Alert) -> None:
        producer = self._connect()
        value = json.dumps(alert.to_json(), separators=(",", ":")).encode("utf-8")
        future = producer.send(
            self.topic,
            key=alert.saga_id.encode("utf-8"),
            value=value,
            headers=[("ce_type", ALERT_EVENT_TYPE.encode()), ("ce_sagaid", alert.saga_id.encode())],
        )
        future.get(timeout=self.timeout_s)

    def _release(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=self.timeout_s)
            except Exception as exc:
                log.warning("alert sink kafka: producer close failed: %s", exc)
            self._producer = None


SINK_NAMES = ("log", "webhook", "kafka", "alertmanager")


@runtime_checkable
class ResendingSink(Protocol):
    """A sink that must be reminded of every open alert (Alertmanager forgets stale ones)."""

    def refresh(self, open_alerts: Sequence[Alert]) -> int: ...


def build_sinks(
    settings: AlertSettings,
    *,
    bootstrap_servers: str = "",
    client_id: str = "sagascope",
    kafka_config: Mapping[str, Any] | None = None,
) -> list[AlertSink]:
    """The sinks ``alerts.sinks`` names, configured from the settings.

    Raises:
        ConfigError: naming the setting, for an unknown sink or a sink missing its settings.
    """
    names = [n.strip() for n in settings.sinks.split(",") if n.strip()]
    unknown = [n for n in names if n not in SINK_NAMES]
    if unknown:
        raise ConfigError(
            f"setting alerts.sinks: unknown sink(s) {', '.join(unknown)}; "
            f"choose from {', '.join(SINK_NAMES)}"
        )
    if not names:
        raise ConfigError("setting alerts.sinks names no sink; use e.g. 'log'")
    sinks: list[AlertSink] = []
    for name in dict.fromkeys(names):
        if name == "log":
            sinks.append(LogSink())
        elif name == "alertmanager":
            sinks.extend(_alertmanager_sinks(settings))
        elif name == "webhook":
            if not settings.webhook_url:
                raise ConfigError("alert sink 'webhook' needs the setting alerts.webhook_url")
            sinks.append(
                WebhookSink(
                    settings.webhook_url,
                    timeout_s=settings.sink_timeout_s,
                    retries=settings.sink_retries,
                    backoff_s=settings.retry_backoff_s,
                    backoff_max_s=settings.retry_backoff_max_s,
                )
            )
        else:
            sinks.append(
                KafkaSink(
                    bootstrap_servers,
                    settings.kafka_topic,
                    client_id=f"{client_id}-alerter",
                    timeout_s=settings.sink_timeout_s,
                    retries=settings.sink_retries,
                    backoff_s=settings.retry_backoff_s,
                    backoff_max_s=settings.retry_backoff_max_s,
                    client_config=kafka_config,
                )
            )
    return sinks


def _alertmanager_sinks(settings: AlertSettings) -> list[AlertSink]:
    from sagascope.alerter.alertmanager import AlertmanagerSink

    urls = [u.strip() for u in settings.alertmanager_urls.split(",") if u.strip()]
    if not urls:
        raise ConfigError("alert sink 'alertmanager' needs the setting alerts.alertmanager_urls")
    return [
        AlertmanagerSink(
            url,
            severity=settings.alertmanager_severity,
            resend_s=settings.alertmanager_resend_s,
            min_validity_s=settings.interval_s,
            timeout_s=settings.sink_timeout_s,
            retries=settings.sink_retries,
            backoff_s=settings.retry_backoff_s,
            backoff_max_s=settings.retry_backoff_max_s,
        )
        for url in dict.fromkeys(urls)
    ]


def refresh_all(sinks: Sequence[AlertSink], open_alerts: Sequence[Alert]) -> None:
    """Remind the sinks that re-send open alerts (Alertmanager's) of every open alert."""
    for sink in sinks:
        if isinstance(sink, ResendingSink):
            try:
                sink.refresh(open_alerts)
            except Exception:
                log.exception("alert sink %s raised on refresh", getattr(sink, "name", sink))


def send_to_all(sinks: Sequence[AlertSink], alert: Alert) -> None:
    """Send to every sink; one failing sink never keeps the alert from the others."""
    for sink in sinks:
        try:
            sink.send(alert)
        except Exception:
            log.exception("alert sink %s raised on send", getattr(sink, "name", sink))
