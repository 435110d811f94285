"""The alerter: opens an alert once per stalled saga, resolves it when the saga moves on.

Each evaluation asks the query layer which sagas are stalled (silent past their threshold,
measured against the collector's watermark so collector lag raises no false alarms), compares
them with the open alerts in the ``alerts`` table, writes the changes there first and only
then hands them to the sinks. Alerts are keyed by saga and the time it went silent, so a
restarted alerter carries on with the alerts already open instead of repeating them.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sagascope.alerter.registry import ResendingSink, build_sinks, refresh_all, send_to_all
from sagascope.alerter.retrying import AlertSink
from sagascope.alerter.thresholds import (
    StepDurations,
    Threshold,
    Thresholds,
    mixture_percentile,
)
from sagascope.instrumentation.contract import SAGA_STATUSES
from sagascope.queries import (
    STATE_OPEN,
    STATE_RESOLVED,
    Alert,
    SagaFilter,
    SagaQueries,
    StalledSaga,
    StallRule,
    alert_row,
    flow_link,
    list_alerts,
    open_alert_since,
)
from sagascope.settings import AlertSettings, Settings
from sagascope.store import Store, StoreError
from sagascope.store.timetext import as_utc, epoch_ms

log = logging.getLogger(__name__)

__all__ = ["Alerter", "Evaluation", "step_durations"]


RESOLVED_MOVED_ON = "moved on"
RESOLVED_GONE = "saga no longer stored"


def _alert_id(saga_id: str, since: datetime) -> str:
    # One alert per stall episode: same saga, same moment it went silent.
    key = f"{saga_id}\x00{epoch_ms(since)}".encode()
    return hashlib.sha256(key).hexdigest()[:24]


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation did."""

    opened: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    #: Stalled sagas seen, and alerts open after this evaluation.
    stalled: int = 0
    open: int = 0
    #: Changes recorded but not sent: their group (saga type, step) is silenced.
    silenced: int = 0


class Alerter:
    """Evaluates stall rules on an interval, keeps the ``alerts`` table, feeds the sinks.

    Args:
        store: the store holding ``messages``, ``alerts`` and ``progress``.
        queries: the query layer over the same store; learned thresholds come from its
            ``transitions``. Stalls are asked of a ``SagaQueries`` built with the thresholds.
        alert_settings: threshold rules, default threshold, interval.
        sinks: where alerts go (see :func:`build_sinks`).
        dashboard_url: base URL of the dashboard for the links in alerts.
    """

    def __init__(
        self,
        store: Store,
        queries: SagaQueries,
        alert_settings: AlertSettings,
        sinks: Sequence[AlertSink],
        dashboard_url: str,
    ) -> None:
        self.store = store
        self.queries = queries
        self.settings = alert_settings
        self.thresholds = Thresholds(alert_settings)
        self.sinks = list(sinks)
        self.dashboard_url = dashboard_url
        self._learned_at: float | None = None
        self._stall_rules: list[StallRule] | None = None
        self._stall_queries: SagaQueries | None = None
        #: Evaluations completed, and evaluations that failed (store errors), since start.
        self.evaluations = 0
        self.failed_evaluations = 0

    @classmethod
    def from_settings(
        cls,
        store: Store,
        settings: Settings,
        *,
        queries: SagaQueries | None = None,
        sinks: Sequence[AlertSink] | None = None,
    ) -> Alerter:
        """An alerter as ``sagascope alert`` and ``sagascope demo`` run it."""
        if queries is None:
            queries = _make_queries(store, settings.alerts, ())
        if sinks is None:
            sinks = build_sinks(
                settings.alerts,
                bootstrap_servers=settings.broker.bootstrap_servers,
                client_id=settings.broker.client_id,
                kafka_config=_kafka_config(settings),
            )
        return cls(store, queries, settings.alerts, sinks, settings.dashboard.link_url)

    # -- thresholds ---------------------------------------------------------------------

    def refresh_thresholds(self, now: datetime | None = None) -> dict[tuple[str, str], Threshold]:
        """Learn thresholds from the transitions of the last ``learn_window_s``."""
        now = as_utc(now or datetime.now(UTC))
        durations = self._step_durations(now - timedelta(seconds=self.settings.learn_window_s))
        learned = self.thresholds.learn(durations)
        self._learned_at = time.monotonic()
        for t in learned.values():
            log.debug(
                "threshold saga_type=%s step=%s threshold_s=%.3f source=%s samples=%d",
                t.saga_type, t.step, t.threshold_s, t.source, t.samples,
            )
        return learned

    def _step_durations(self, time_from: datetime) -> list[StepDurations]:
        percentiles = sorted({r.learn_percentile for r in self.settings.rules if r.learn_percentile})
        return step_durations(self.queries, time_from, percentiles)

    def _thresholds_due(self) -> bool:
        if not self.thresholds.learns:
            return False
        return (
            self._learned_at is None
            or time.monotonic() - self._learned_at >= self.settings.learn_refresh_s
        )

    def _stalled(self) -> list[StalledSaga]:
        rules = self.thresholds.stall_rules()
        if self._stall_queries is None or rules != self._stall_rules:
            self._stall_queries = _make_queries(self.store, self.settings, rules)
            self._stall_rules = rules
        return self._stall_queries.stalled()

    # -- evaluation ---------------------------------------------------------------------

    def evaluate_once(self, now: datetime | None = None) -> Evaluation:
        """Open alerts for newly stalled sagas and resolve those that moved on.

        ``now`` stamps the alert rows (default: the wall clock); silence itself is measured
        by the query layer against the collector's watermark.

        Raises:
            StoreError: when the store cannot be read or written; nothing was sent then.
        """
        now = as_utc(now or datetime.now(UTC))
        if self._thresholds_due():
            self.refresh_thresholds(now)
        stalled = {s.saga_id: s for s in self._stalled()}
        # Whole alerts only of the sagas whose alert changes: thousands can be open while a
        # system is stuck, and each evaluation held them all (serve's memory grew with them).
        open_since = open_alert_since(self.store)
        fresh = [s for sid, s in stalled.items()
                 if open_since.get(sid) != epoch_ms(as_utc(s.since))]
        quiet_ids = [sid for sid in open_since if sid not in stalled]
        changing = [s.saga_id for s in fresh if s.saga_id in open_since] + quiet_ids
        open_alerts = {a.saga_id: a for a in self._open_alerts_of(changing)}

        opened: list[Alert] = []
        resolved: list[Alert] = []
        for saga in fresh:
            since = as_utc(saga.since)
            existing = open_alerts.get(saga.saga_id)
            if existing is not None:
                # Silent again, after a later message: the old stall is over.
                resolved.append(self._resolved(existing, RESOLVED_MOVED_ON, now))
            opened.append(self._opened(saga, since, now))

        quiet = [open_alerts[sid] for sid in quiet_ids if sid in open_alerts]
        if quiet:
            current = self.queries.summaries([a.saga_id for a in quiet])
            for alert in quiet:
                state = current.get(alert.saga_id)
                if state is None:
                    resolved.append(self._resolved(alert, RESOLVED_GONE, now))
                elif epoch_ms(as_utc(state.last_kafka_time)) > epoch_ms(alert.since):
                    outcome = state.status if state.status in SAGA_STATUSES else RESOLVED_MOVED_ON
                    resolved.append(self._resolved(alert, outcome, now))
                # else: same last message, but no longer past its threshold (a learned
                # threshold grew, or the watermark fell back): still stalled, stays open.

        changes = resolved + opened
        silenced_groups = self._silenced_groups(now)
        held = 0
        if changes:
            # Recorded whatever the silences: the history stays complete; only notifying stops.
            self.store.insert("alerts", [alert_row(a) for a in changes])
            for alert in changes:
                if (alert.saga_type, alert.step) in silenced_groups:
                    held += 1
                    continue
                send_to_all(self.sinks, alert)
        if any(isinstance(sink, ResendingSink) for sink in self.sinks):
            # Read after the changes are written, so a resolved alert is never re-sent as
            # open. A silenced group's alerts are not re-sent either, so Alertmanager lets
            # them lapse until the silence ends.
            refresh_all(self.sinks, [a for a in self.open_alerts()
                                     if (a.saga_type, a.step) not in silenced_groups])
        open_count = len(open_since) - len(resolved) + len(opened)
        self.evaluations += 1
        if changes:
            log.info(
                "alerts evaluated stalled=%d opened=%d resolved=%d open=%d silenced=%d",
                len(stalled), len(opened), len(resolved), open_count, held,
            )
        return Evaluation(opened, resolved, len(stalled), open_count, held)

    def _silenced_groups(self, now: datetime) -> set[tuple[str, str]]:
        """Alert groups (saga type, step) under a silence set in the dashboard, now."""
        try:
            acks = self.queries.acknowledgements()
        except StoreError as exc:
            # Better a notification too many than a stall nobody hears of.
            log.warning("alert silences unreadable, notifying as usual: %s", exc)
            return set()
        return {key for key, ack in acks.items() if ack.action == "silenced" and ack.active(now)}

    def _opened(self, saga: StalledSaga, since: datetime, now: datetime) -> Alert:
        threshold = self.thresholds.for_step(saga.saga_type, saga.step)
        return Alert(
            alert_id=_alert_id(saga.saga_id, since),
            state=STATE_OPEN,
            saga_id=saga.saga_id,
            saga_type=saga.saga_type,
            step=saga.step,
            waiting_for=saga.waiting_for or "",
            since=since,
            threshold_s=float(saga.threshold_s),
            opened_at=now,
            link=flow_link(self.dashboard_url, saga.saga_id),
            updated_at=now,
            last_type=saga.last_type,
            threshold_source=threshold.source,
            silent_s=float(saga.silent_s),
        )

    @staticmethod
    def _resolved(alert: Alert, resolution: str, now: datetime) -> Alert:
        # ReplacingMergeTree keeps the row with the greatest updated_at: make it strictly later.
        updated = max(now, alert.updated_at + timedelta(milliseconds=1))
        return replace(
            alert, state=STATE_RESOLVED, updated_at=updated, resolved_at=updated, resolution=resolution
        )

    def open_alerts(self) -> list[Alert]:
        """Alerts open now (latest state of each alert)."""
        return list_alerts(self.store, state=STATE_OPEN, limit=None)

    def _open_alerts_of(self, saga_ids: Sequence[str]) -> list[Alert]:
        if not saga_ids:
            return []
        return list_alerts(self.store, state=STATE_OPEN, limit=None, saga_ids=saga_ids)

    # -- loop ---------------------------------------------------------------------------

    def run(self, stop_event: threading.Event) -> None:
        """Evaluate every ``interval_s`` until ``stop_event`` is set; errors never end the loop."""
        log.info(
            "alerter started interval_s=%s sinks=%s",
            self.settings.interval_s, ",".join(s.name for s in self.sinks),
        )
        while not stop_event.is_set():
            started = time.monotonic()
            try:
                self.evaluate_once()
            except StoreError as exc:
                self.failed_evaluations += 1
                log.warning("alert evaluation failed, retrying next interval: %s", exc)
            except Exception:
                self.failed_evaluations += 1
                log.exception("alert evaluation failed, retrying next interval")
            stop_event.wait(max(0.0, self.settings.interval_s - (time.monotonic() - started)))
        log.info("alerter stopped")

    def start(self, stop_event: threading.Event) -> threading.Thread:
        """Run in a daemon thread (the demo's way); set ``stop_event`` to stop it."""
        thread = threading.Thread(
            target=self.run, args=(stop_event,), name="sagascope-alerter", daemon=True
        )
        thread.start()
        return thread

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every sink delivered (or gave up on) what it was sent."""
        deadline = time.monotonic() + timeout_s
        return all(s.flush(max(0.0, deadline - time.monotonic())) for s in self.sinks)

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (within ``timeout_s`` per sink) and release the sinks."""
        for sink in self.sinks:
            try:
                sink.close(timeout_s)
            except Exception:
                log.exception("closing alert sink %s failed", sink.name)


# -- the seam to the query layer -----------------------------------------------------------


def _make_queries(
    store: Store, settings: AlertSettings, stall_rules: Iterable[StallRule]
) -> SagaQueries:
    """A ``SagaQueries`` judging stalls by ``stall_rules`` (rebuilt when thresholds change)."""
    return SagaQueries(
        store,
        status_rules=settings.status_rules,
        stall_rules=list(stall_rules),
        default_threshold_s=settings.default_threshold_s,
    )


def step_durations(
    queries: SagaQueries, time_from: datetime, percentiles: Sequence[float]
) -> list[StepDurations]:
    """Waiting times after each (saga type, step), from the query layer's ``transitions``.

    ``transitions`` reports each step-to-next-step pair by count and percentiles; the waiting
    time after a step is the mixture of its outgoing pairs.
    """
    if not percentiles:
        return []
    by_step: dict[tuple[str, str], list[tuple[int, dict[float, float]]]] = {}
    for t in queries.transitions(SagaFilter(time_from=time_from)):
        points = {50.0: t.p50_s, 90.0: t.p90_s, 95.0: t.p95_s, 99.0: t.p99_s, 100.0: t.max_s}
        points = {k: max(0.0, float(v)) for k, v in points.items()}
        by_step.setdefault((t.saga_type, t.from_step), []).append((int(t.count), points))
    out: list[StepDurations] = []
    for (saga_type, step), parts in by_step.items():
        out.append(
            StepDurations(
                saga_type=saga_type,
                step=step,
                samples=sum(n for n, _ in parts),
                percentiles={p: mixture_percentile(parts, p) for p in percentiles},
            )
        )
    return out


def _kafka_config(settings: Settings) -> dict[str, Any] | None:
    """TLS and SASL for the Kafka sink from ``[broker]``; None when no sink needs Kafka."""
    if "kafka" not in settings.alerts.sinks or not settings.broker.bootstrap_servers:
        return None
    from sagascope.connections import kafka_python_config

    return kafka_python_config(settings.broker)
