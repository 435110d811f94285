"""The sinks ``alerts.sinks`` names, built from the settings, and sending to all of them."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from sagascope.alerter.alertmanager import AlertmanagerSink
from sagascope.alerter.retrying import AlertSink, Delivery
from sagascope.alerter.sinks import KafkaSink, LogSink, WebhookSink
from sagascope.exceptions import ConfigError
from sagascope.queries.alerts import Alert
from sagascope.settings import AlertSettings

log = logging.getLogger(__name__)

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
            sinks.append(WebhookSink(settings.webhook_url, **delivery(settings)))
        else:
            sinks.append(
                KafkaSink(
                    bootstrap_servers,
                    settings.kafka_topic,
                    client_id=f"{client_id}-alerter",
                    client_config=kafka_config,
                    **delivery(settings),
                )
            )
    return sinks


def delivery(settings: AlertSettings) -> Delivery:
    """How the webhook, Kafka and Alertmanager sinks deliver, from ``[alerts]``."""
    return Delivery(
        timeout_s=settings.sink_timeout_s,
        retries=settings.sink_retries,
        backoff_s=settings.retry_backoff_s,
        backoff_max_s=settings.retry_backoff_max_s,
    )


def _alertmanager_sinks(settings: AlertSettings) -> list[AlertSink]:
    urls = [u.strip() for u in settings.alertmanager_urls.split(",") if u.strip()]
    if not urls:
        raise ConfigError("alert sink 'alertmanager' needs the setting alerts.alertmanager_urls")
    return [
        AlertmanagerSink(
            url,
            severity=settings.alertmanager_severity,
            resend_s=settings.alertmanager_resend_s,
            min_validity_s=settings.interval_s,
            **delivery(settings),
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
