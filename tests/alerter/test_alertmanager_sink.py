"""The Alertmanager sink against the real Alertmanager (Debian's prometheus-alertmanager)."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from promstack import ALERTMANAGER, Alertmanager, alertmanager_config, http_json, needs
from seeding import SagaScript, order_saga, seed
from waiting import wait_until

from sagascope.alerter import Alerter, AlertmanagerSink, build_sinks
from sagascope.alerter.alertmanager import ALERT_NAME, alertmanager_payload
from sagascope.exceptions import ConfigError
from sagascope.queries import Alert, flow_link
from sagascope.settings import AlertSettings, DashboardSettings, Settings

DASHBOARD = "http://dashboard.example:8501"


def _settings(urls: str, **alerts: object) -> Settings:
    values: dict[str, object] = {
        "sinks": "alertmanager",
        "alertmanager_urls": urls,
        "alertmanager_severity": "page",
        "interval_s": 0.2,
        "retry_backoff_s": 0.1,
        "retry_backoff_max_s": 0.5,
        "sink_retries": 1000,
    }
    values.update(alerts)
    return Settings(
        alerts=AlertSettings(**values),  # type: ignore[arg-type]
        dashboard=DashboardSettings(public_url=DASHBOARD),
    )


def _stalled(store, saga_id: str) -> SagaScript:
    saga = order_saga(saga_id, "stalled", start=datetime.now(UTC) - timedelta(hours=1))
    seed(store, saga)
    return saga


def _complete(store, saga: SagaScript) -> None:
    """The saga moves on and completes (new messages only)."""
    already = len(saga.rows)
    saga.event("PaymentReceived", "payment", step="payment")
    saga.event("OrderCompleted", "orchestrator", step="complete", status="completed")
    store.insert("messages", saga.rows[already:])


@pytest.fixture
def alertmanagers(tmp_path: Path, receiver) -> Iterator[list[Alertmanager]]:
    """Two Alertmanagers (an HA pair as far as senders go) notifying ``receiver``."""
    started = [
        Alertmanager(tmp_path / f"am{i}", alertmanager_config(receiver.url)).start()
        for i in range(2)
    ]
    yield started  # type: ignore[misc]
    for am in started:
        am.stop()


def _the_alert_opened(store, settings: Settings) -> Alert:
    """The one alert an alerter with these settings opens in one evaluation."""
    alerter = Alerter.from_settings(store, settings)
    try:
        (alert,) = alerter.evaluate_once().opened
    finally:
        alerter.close()
    return alert


def _firing(am: Alertmanager, saga_id: str) -> list[dict]:
    return [a for a in am.alerts() if a["labels"].get("saga_id") == saga_id]


@needs(ALERTMANAGER)
@pytest.mark.slow
def test_a_stalled_saga_reaches_every_alertmanager_as_one_alert_and_resolves_when_it_completes(
    store, alertmanagers, receiver
):
    saga = _stalled(store, "order-am-1")
    urls = ",".join(am.url for am in alertmanagers)
    alerter = Alerter.from_settings(store, _settings(urls))
    try:
        assert len(alerter.evaluate_once().opened) == 1
        alerter.evaluate_once()  # a second evaluation opens nothing new
        assert alerter.flush(20)
        for am in alertmanagers:
            (alert,) = wait_until(lambda am=am: _firing(am, "order-am-1"), what="alert in AM")
            assert alert["labels"] == {
                "alertname": ALERT_NAME,
                "saga_type": "order-fulfillment",
                "step": "payment",
                "severity": "page",
                "saga_id": "order-am-1",
            }
            assert alert["generatorURL"] == flow_link(DASHBOARD, "order-am-1")
            assert alert["status"]["state"] == "active"
            notes = alert["annotations"]
            assert notes["saga_id"] == "order-am-1"
            assert notes["threshold"] == "5 min 00 s"
            assert notes["silent_for"].startswith("59 min") or notes["silent_for"].startswith("1 h")
            assert notes["waiting_for"]
            assert len(am.alerts()) == 1
        firing = wait_until(
            lambda: [n for n in receiver.received if n["status"] == "firing"], what="notification"
        )
        assert firing[0]["groupLabels"] == {
            "alertname": ALERT_NAME, "saga_type": "order-fulfillment", "step": "payment"}

        _complete(store, saga)
        (resolved,) = alerter.evaluate_once().resolved
        assert resolved.resolution == "completed"
        assert alerter.flush(20)
        for am in alertmanagers:
            wait_until(lambda am=am: not _firing(am, "order-am-1"), what="alert resolved in AM")
        notice = wait_until(
            lambda: [n for n in receiver.received if n["status"] == "resolved"],
            what="resolved notification",
        )
        assert notice[0]["alerts"][0]["labels"]["saga_id"] == "order-am-1"
    finally:
        alerter.close()


@needs(ALERTMANAGER)
@pytest.mark.slow
def test_with_alertmanager_down_alerts_arrive_after_it_returns_and_evaluation_never_stops(
    store, tmp_path, receiver
):
    _stalled(store, "order-am-down")
    down = Alertmanager(tmp_path / "am", alertmanager_config(receiver.url))
    alerter = Alerter.from_settings(store, _settings(down.url))
    (sink,) = alerter.sinks
    assert isinstance(sink, AlertmanagerSink)
    stop = threading.Event()
    thread = alerter.start(stop)
    try:
        wait_until(lambda: sink.stats.retried >= 3, what="failed deliveries while AM is down")
        evaluations = alerter.evaluations
        wait_until(lambda: alerter.evaluations >= evaluations + 3, what="evaluations go on")
        assert alerter.failed_evaluations == 0 and sink.stats.delivered == 0
        down.start()
        (alert,) = wait_until(lambda: _firing(down, "order-am-down"), what="late delivery")
        assert alert["generatorURL"] == flow_link(DASHBOARD, "order-am-down")
        assert len(down.alerts()) == 1
        # Still evaluating after the outage; the alert was opened once.
        evaluations = alerter.evaluations
        wait_until(lambda: alerter.evaluations >= evaluations + 2, what="evaluations go on")
    finally:
        stop.set()
        thread.join(10)
        alerter.close()
        down.stop()
    assert sink.stats.failed == 0


@needs(ALERTMANAGER)
@pytest.mark.slow
def test_open_alerts_are_resent_with_a_later_end_and_a_restarted_alerter_resends_them(
    store, tmp_path, receiver
):
    _stalled(store, "order-am-resend")
    am = Alertmanager(tmp_path / "am", alertmanager_config(receiver.url)).start()
    try:
        # The first alerter opens the alert but has no Alertmanager sink (e.g. an older config).
        first = Alerter.from_settings(store, _settings("", sinks="log"))
        assert len(first.evaluate_once().opened) == 1
        first.close()

        # After a restart with the sink, the alert already open is sent, then kept alive.
        alerter = Alerter.from_settings(store, _settings(am.url, alertmanager_resend_s=0.5))
        try:
            assert alerter.evaluate_once().opened == []
            (alert,) = wait_until(lambda: _firing(am, "order-am-resend"), what="resent alert")
            first_end = alert["endsAt"]
            wait_until(
                lambda: alerter.evaluate_once() and alerter.flush(5)
                and _firing(am, "order-am-resend")[0]["endsAt"] > first_end,
                what="endsAt pushed forward by a resend",
            )
        finally:
            alerter.close()
    finally:
        am.stop()


SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager" / "alertmanager.yml"


def _shipped_config(receiver_url: str) -> str:
    """The shipped Alertmanager configuration, its receivers pointed at ``receiver_url`` and
    its waits shortened; route, grouping and inhibition as shipped."""
    text = SHIPPED_CONFIG.read_text()
    shortened = (("group_wait: 30s", "group_wait: 0s"), ("group_interval: 5m", "group_interval: 1s"))
    for shipped, fast in shortened:
        assert shipped in text
        text = text.replace(shipped, fast)
    return text.replace("http://127.0.0.1:5001/", receiver_url + "/")


def _step_alert(am: Alertmanager, *, resolved: bool) -> None:
    """SagasStalledAtStep, as Prometheus sends it from the shipped rules."""
    now = datetime.now(UTC)
    end = now if resolved else now + timedelta(minutes=5)
    http_json(f"{am.url}/api/v2/alerts", data=[{
        "labels": {"alertname": "SagasStalledAtStep", "saga_type": "order-fulfillment",
                   "step": "payment", "severity": "critical"},
        "annotations": {"summary": "12 order-fulfillment sagas stalled after payment"},
        "startsAt": now.isoformat(), "endsAt": end.isoformat(),
    }])


def _aggregation_groups(am: Alertmanager) -> int:
    """Alertmanager's count of alert groups it holds (from its own metrics)."""
    with urllib.request.urlopen(f"{am.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    (line,) = [
        line for line in text.splitlines()
        if line.startswith("alertmanager_dispatcher_aggregation_groups ")
    ]
    return int(float(line.split()[1]))


def _noticed(receiver, name: str, status: str) -> set[str]:
    """saga_id (or alertname) of every alert ``name`` was notified of in that status."""
    return {
        a["labels"].get("saga_id", a["labels"]["alertname"])
        for n in list(receiver.received) if n["receiver"] == name
        for a in n["alerts"] if a["status"] == status
    }


@needs(ALERTMANAGER)
@pytest.mark.slow
def test_with_the_shipped_config_every_owner_hears_that_a_mass_stall_recovered(
    store, tmp_path, receiver
):
    """12 sagas stall at one step, the step alert fires too, the sagas recover before the step
    alert resolves: every saga's owner still gets its resolved notice."""
    sagas = [_stalled(store, f"order-mass-{i:02d}") for i in range(12)]
    ids = {s.saga_id for s in sagas}
    am = Alertmanager(tmp_path / "am", _shipped_config(receiver.url.rsplit("/", 1)[0])).start()
    alerter = Alerter.from_settings(store, _settings(am.url, alertmanager_severity="warning"))
    try:
        assert len(alerter.evaluate_once().opened) == 12
        assert alerter.flush(20)
        wait_until(lambda: _noticed(receiver, "saga-owners", "firing") == ids, what="12 firing")
        _step_alert(am, resolved=False)
        wait_until(
            lambda: "SagasStalledAtStep" in _noticed(receiver, "on-call", "firing"),
            what="the step alert paged on-call",
        )
        for saga in sagas:
            _complete(store, saga)
        assert len(alerter.evaluate_once().resolved) == 12
        assert alerter.flush(20)
        # Alertmanager drops the per-saga group once it has flushed its resolved alerts (sent,
        # or muted by an inhibition): that must happen while the step alert still fires.
        wait_until(
            lambda: _aggregation_groups(am) == 1,
            what="the per-saga alerts resolved and flushed while the step alert fires",
        )
        _step_alert(am, resolved=True)
        wait_until(
            lambda: _noticed(receiver, "saga-owners", "resolved") == ids,
            what="a resolved notice for every saga",
        )
        wait_until(
            lambda: "SagasStalledAtStep" in _noticed(receiver, "on-call", "resolved"),
            what="the step alert's resolved notice",
        )
    finally:
        alerter.close()
        am.stop()


def test_the_payload_carries_labels_annotations_link_and_an_end_ahead(make_alert):
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    alert = make_alert("order-9", since=now - timedelta(seconds=90), threshold_s=60.0)
    payload = alertmanager_payload(alert, severity="critical", valid_for_s=240, now=now)
    assert payload["labels"] == {
        "alertname": "SagaStalled", "saga_type": "order-fulfillment", "step": "RetrievePayment",
        "severity": "critical", "saga_id": "order-9"}
    assert payload["annotations"]["silent_for"] == "1 min 30 s"
    assert payload["annotations"]["threshold"] == "1 min 00 s"
    assert payload["annotations"]["waiting_for"] == "PaymentReceived"
    assert payload["endsAt"] == "2026-01-01T12:04:00.000Z"
    assert payload["generatorURL"] == alert.link


def test_a_resolved_alert_ends_when_it_resolved(make_alert):
    resolved_at = datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    alert = make_alert("order-9", state="resolved", resolved_at=resolved_at)
    payload = alertmanager_payload(alert, severity="warning", valid_for_s=240)
    assert payload["endsAt"] == "2026-01-01T12:05:00.000Z"


def test_the_alertmanager_sink_needs_its_urls():
    with pytest.raises(ConfigError, match=r"alerts\.alertmanager_urls"):
        build_sinks(AlertSettings(sinks="alertmanager"))
    with pytest.raises(ConfigError, match=r"alerts\.alertmanager_urls"):
        build_sinks(AlertSettings(sinks="alertmanager", alertmanager_urls="am.example:9093"))


def test_one_sink_per_alertmanager_url():
    sinks = build_sinks(AlertSettings(
        sinks="alertmanager", alertmanager_urls="http://a:9093, http://b:9093/,http://a:9093"))
    assert [s.url for s in sinks] == ["http://a:9093", "http://b:9093"]  # type: ignore[attr-defined]


def test_alert_links_point_at_the_dashboards_own_address_without_a_public_url(store):
    _stalled(store, "order-link")
    settings = Settings(
        alerts=AlertSettings(sinks="log"), dashboard=DashboardSettings(host="127.0.0.2", port=9123)
    )
    link = _the_alert_opened(store, settings).link
    assert link == flow_link("http://127.0.0.2:9123", "order-link")


def test_alert_links_use_the_public_url_when_set(store):
    _stalled(store, "order-public")
    settings = Settings(
        alerts=AlertSettings(sinks="log"),
        dashboard=DashboardSettings(port=9123, public_url="https://sagas.example.com/"),
    )
    link = _the_alert_opened(store, settings).link
    assert link == flow_link("https://sagas.example.com", "order-public")
