"""The Alertmanager sink: alerts POSTed to Alertmanager's v2 API, as Prometheus sends them.

Alertmanager forgets an alert whose ``endsAt`` has passed, so a client re-sends each open
alert while it is open (Prometheus: every minute, ``endsAt`` four intervals ahead) and sends
it once more with ``endsAt`` in the past when it resolves. The alerter hands every open alert
to :meth:`AlertmanagerSink.refresh` after each evaluation, which queues those due for a
resend, and that includes alerts opened before a restart, which this process never sent.

Labels identify the alert: ``alertname``, ``saga_type``, ``step``, ``severity`` and
``saga_id`` (Alertmanager tells alerts apart by their label set: without the saga id every
stalled saga at one step would be one alert, and the first to move on would resolve them all).
Route with ``group_by: [alertname, saga_type, step]`` to get one notification per stalled step.
Annotations carry the saga id, what the saga waits for, its silence and its threshold;
``generatorURL`` is the flow's deep link in the dashboard.

One sink per Alertmanager URL, each with its own queue and retries (Prometheus likewise sends
to every Alertmanager of an HA cluster): one being down delays only its own deliveries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

from sagascope.alerter.retrying import Delivery, RetryingSink
from sagascope.alerter.sinks import post_json
from sagascope.exceptions import ConfigError
from sagascope.queries.alerts import STATE_OPEN, Alert
from sagascope.queries.formatting import format_duration
from sagascope.store.timetext import format_time

log = logging.getLogger(__name__)

__all__ = ["ALERT_NAME", "AlertmanagerSink", "alertmanager_payload"]

#: The ``alertname`` label of stalled-saga alerts.
ALERT_NAME = "SagaStalled"
#: An open alert's ``endsAt`` is this many resend intervals ahead (Prometheus uses 4).
VALIDITY_INTERVALS = 4
#: How long a resolved alert's final state is remembered (late retries of it send that state).
_FORGET_RESOLVED_S = 3600.0


def alertmanager_payload(
    alert: Alert, *, severity: str, valid_for_s: float, now: datetime | None = None
) -> dict[str, Any]:
    """One alert as Alertmanager's ``POST /api/v2/alerts`` takes it (the body is a list)."""
    now = now or datetime.now(UTC)
    if alert.state == STATE_OPEN:
        ends_at = now + timedelta(seconds=valid_for_s)
        silent_s = max(alert.silent_s, (now - alert.since).total_seconds())
    else:
        ends_at = alert.resolved_at or alert.updated_at
        silent_s = max(alert.silent_s, (ends_at - alert.since).total_seconds())
    return {
        "labels": {
            "alertname": ALERT_NAME,
            "saga_type": alert.saga_type,
            "step": alert.step,
            "severity": severity,
            "saga_id": alert.saga_id,
        },
        "annotations": {
            "summary": f"{alert.saga_type} saga {alert.saga_id} stalled after {alert.step}",
            "saga_id": alert.saga_id,
            "waiting_for": alert.waiting_for,
            "silent_for": format_duration(silent_s),
            "threshold": format_duration(alert.threshold_s),
            **({"resolution": alert.resolution} if alert.resolution else {}),
        },
        "startsAt": format_time(alert.opened_at),
        "endsAt": format_time(ends_at),
        "generatorURL": alert.link,
    }


class AlertmanagerSink(RetryingSink):
    """Sends alerts to one Alertmanager; re-sends open ones every ``resend_s``.

    Args:
        url: Alertmanager's base URL (``http://host:9093``, with its path prefix if any).
        severity: the ``severity`` label.
        resend_s: how often an open alert is sent again; its ``endsAt`` is
            ``VALIDITY_INTERVALS`` times this ahead (at least ``min_validity_s``).
        min_validity_s: the alerter's evaluation interval: an alert stays valid for at least
            four of them, so a slow evaluation never lets Alertmanager resolve it.
    """

    name = "alertmanager"

    def __init__(
        self,
        url: str,
        *,
        severity: str = "warning",
        resend_s: float = 60.0,
        min_validity_s: float = 0.0,
        **delivery: Unpack[Delivery],
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"setting alerts.alertmanager_urls must list http(s) URLs, got {url!r}"
            )
        if resend_s <= 0:
            raise ConfigError(f"setting alerts.alertmanager_resend_s must be > 0, got {resend_s}")
        if not severity:
            raise ConfigError("setting alerts.alertmanager_severity must not be empty")
        super().__init__(**delivery)
        self.url = url.rstrip("/")
        self.endpoint = f"{self.url}/api/v2/alerts"
        self.severity = severity
        self.resend_s = resend_s
        self.valid_for_s = VALIDITY_INTERVALS * max(resend_s, min_validity_s)
        self._state_lock = threading.Lock()
        #: The latest state of every alert this sink was given, so a retry of an older state
        #: (an "open" still in backoff after the alert resolved) sends the current one.
        self._latest: dict[str, Alert] = {}
        #: When each open alert was last queued (monotonic), for the resends.
        self._queued_at: dict[str, float] = {}
        self._resolved_at: dict[str, float] = {}

    def send(self, alert: Alert) -> None:
        now = time.monotonic()
        with self._state_lock:
            self._latest[alert.alert_id] = alert
            if alert.state == STATE_OPEN:
                self._queued_at[alert.alert_id] = now
            else:
                self._queued_at.pop(alert.alert_id, None)
                self._resolved_at[alert.alert_id] = now
        super().send(alert)

    def refresh(self, open_alerts: Sequence[Alert]) -> int:
        """Queue the open alerts not sent for ``resend_s`` (or never); returns how many."""
        now = time.monotonic()
        due: list[Alert] = []
        with self._state_lock:
            current = {a.alert_id for a in open_alerts}
            for alert_id in [a for a in self._queued_at if a not in current]:
                # Resolved elsewhere (or by another alerter): stop re-sending it.
                del self._queued_at[alert_id]
                self._latest.pop(alert_id, None)
            for alert_id, at in list(self._resolved_at.items()):
                if now - at > _FORGET_RESOLVED_S:
                    del self._resolved_at[alert_id]
                    self._latest.pop(alert_id, None)
            for alert in open_alerts:
                last = self._queued_at.get(alert.alert_id)
                if last is not None and now - last < self.resend_s:
                    continue
                if alert.alert_id in self._resolved_at:
                    continue
                self._latest[alert.alert_id] = alert
                self._queued_at[alert.alert_id] = now
                due.append(alert)
        pending = self._pending_ids()
        for alert in due:
            # Still queued from last time (Alertmanager down): one copy in the queue is enough.
            if alert.alert_id not in pending:
                super().send(alert)
        return len(due)

    def _pending_ids(self) -> set[str]:
        with self._cond:
            return {p.alert.alert_id for p in self._pending}

    def _deliver(self, alert: Alert) -> None:
        with self._state_lock:
            alert = self._latest.get(alert.alert_id, alert)
        payload = alertmanager_payload(alert, severity=self.severity, valid_for_s=self.valid_for_s)
        # A 400 means Alertmanager refused the alert itself (e.g. an invalid label): permanent.
        post_json(self.endpoint, [payload], self.timeout_s)
