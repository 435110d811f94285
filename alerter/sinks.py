"""The sinks: the log, a webhook (JSON POST) and a Kafka topic (Alertmanager's is its own module).

The webhook and Kafka sinks deliver in the background with retries (:class:`RetryingSink`).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Unpack

from sagascope.alerter.exceptions import PermanentDeliveryError
from sagascope.alerter.retrying import Delivery, RetryingSink, SinkStats
from sagascope.exceptions import ConfigError
from sagascope.queries.alerts import STATE_OPEN, Alert
from sagascope.store.timetext import format_time

log = logging.getLogger(__name__)

#: Kafka header ``ce_type`` of alert records, so consumers can tell alert versions apart.
ALERT_EVENT_TYPE = "sagascope.alert.v1"


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
                    format_time(alert.since), alert.silent_s, alert.threshold_s, alert.link,
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


class WebhookSink(RetryingSink):
    """POSTs each alert as JSON to a URL; retries on connection errors, 5xx, 408 and 429."""

    name = "webhook"

    def __init__(self, url: str, **delivery: Unpack[Delivery]) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"setting alerts.webhook_url must be an http(s) URL, got {url!r}")
        super().__init__(**delivery)
        self.url = url

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
        client_config: Mapping[str, Any] | None = None,
        **delivery: Unpack[Delivery],
    ) -> None:
        if not bootstrap_servers:
            raise ConfigError("the kafka alert sink needs broker.bootstrap_servers")
        if not topic:
            raise ConfigError("setting alerts.kafka_topic must not be empty")
        super().__init__(**delivery)
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.client_id = client_id
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
