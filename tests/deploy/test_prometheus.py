"""The saga metrics as Prometheus sees them, and the shipped deploy/ files, with the real programs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from promstack import AMTOOL, PROMETHEUS, PROMTOOL, Prometheus, needs
from waiting import read_lines_until, wait_until

from sagascope.embedded import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TESTS = REPO / "tests"

# Seeds a chDB directory in its own process (a chDB directory opens in one process at a time):
# stalled sagas at two steps of two types, and one saga of every other status.
_SEED_SCRIPT = """
import sys
from datetime import UTC, datetime, timedelta
sys.path.insert(0, sys.argv[2])
from seeding import order_saga, seed, seed_scenarios, SagaScript
from sagascope.store import ensure_schema, open_store
store = open_store(path=sys.argv[1], database="metrics")
ensure_schema(store)
now = datetime.now(UTC)
seed_scenarios(store, now)
hour_ago = now - timedelta(hours=1)
seed(store, [order_saga(f"order-stuck-{i}", "stalled", start=hour_ago) for i in range(3)])
trip = SagaScript("trip-stuck-1", "trip-booking", start=hour_ago)
trip.command("BookFlight", "travel-agency", step="BookFlight")
seed(store, trip)
store.insert("progress", [{
    "group_id": "g", "collector_id": "c", "topic": "orders", "partition": 0,
    "stored_offset": 0, "end_offset": 0, "read_until": now, "updated_at": now,
}])
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SAGASCOPE_")}


def _sagascope(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sagascope", *args], cwd=cwd, env=_env(),
        capture_output=True, text=True, timeout=120, check=True,
    )


def _tool(*args: str, timeout_s: float = 60) -> str:
    """Run a Prometheus tool that must succeed; its standard output."""
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@needs(PROMTOOL)
def test_promtool_checks_the_shipped_rules():
    out = _tool(PROMTOOL, "check", "rules", str(DEPLOY / "prometheus" / "sagascope-rules.yml"))
    assert "SUCCESS: 9 rules found" in out


@needs(PROMTOOL)
def test_promtool_unit_tests_of_the_shipped_rules_pass():
    tests = DEPLOY / "prometheus" / "tests" / "sagascope-rules.test.yml"
    assert "SUCCESS" in _tool(PROMTOOL, "test", "rules", str(tests), timeout_s=120)


@needs(PROMTOOL)
def test_the_shipped_prometheus_config_is_valid():
    _tool(PROMTOOL, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))


@needs(AMTOOL)
def test_the_shipped_alertmanager_config_is_valid():
    _tool(AMTOOL, "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))


def _value(result: list[dict]) -> float:
    (sample,) = result
    return float(sample["value"][1])


@needs(PROMETHEUS)
@pytest.mark.slow
def test_prometheus_scrapes_the_alerter_and_counts_the_sagas_sagascope_stalled_lists(tmp_path):
    store_dir = str(tmp_path / "store")
    subprocess.run(
        [sys.executable, "-c", _SEED_SCRIPT, store_dir, str(TESTS)],
        check=True, env=_env(), timeout=120,
    )
    port = free_port()
    alerter = subprocess.Popen(
        [sys.executable, "-m", "sagascope", "alert", "--store-path", store_dir,
         "--database", "metrics", "--interval", "1", "--metrics-port", str(port)],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    prometheus = Prometheus(
        tmp_path / "prometheus", [f"127.0.0.1:{port}"],
        rule_files=(str(DEPLOY / "prometheus" / "sagascope-rules.yml"),),
    )
    try:
        prometheus.start()
        stalled_total = wait_until(
            lambda: prometheus.query("sum(sagascope_sagas_stalled)"), 90, "stalled sagas scraped"
        )
        # The shipped recording rule, evaluated by Prometheus on the scraped series.
        recorded = wait_until(
            lambda: prometheus.query("saga_type_step:sagascope_sagas_stalled:max"), 60,
            "the recording rule evaluated",
        )
        by_step = {
            (r["metric"]["saga_type"], r["metric"]["step"]): float(r["value"][1]) for r in recorded
        }
        started = _value(prometheus.query("sum(sagascope_sagas_started_total)"))
        completed = _value(prometheus.query(
            'sagascope_sagas_finished_total{saga_type="order-fulfillment", outcome="completed"}'))
        cycle_count = _value(prometheus.query("sum(sagascope_saga_cycle_time_seconds_count)"))
        open_alerts = wait_until(
            lambda: prometheus.query("sum(sagascope_alerts_open)"), 60, "open alerts scraped")
        labels = {k for r in prometheus.query("{job='sagascope'}") for k in r["metric"]}
    finally:
        prometheus.stop()
        alerter.send_signal(signal.SIGTERM)
        _, err = alerter.communicate(timeout=60)
    assert alerter.returncode == 0, err[-2000:]

    # The alerter is gone: `sagascope stalled` can open the store now.
    listed = [json.loads(line) for line in _sagascope(
        "stalled", "--json", "--store-path", store_dir, "--database", "metrics", cwd=tmp_path
    ).stdout.splitlines()]
    assert len(listed) == 5
    assert _value(stalled_total) == len(listed)
    expected: dict[tuple[str, str], float] = {}
    for s in listed:
        expected[(s["saga_type"], s["step"])] = expected.get((s["saga_type"], s["step"]), 0) + 1
    assert by_step == expected == {("order-fulfillment", "payment"): 4,
                                   ("trip-booking", "BookFlight"): 1}
    assert started == 10  # 6 scenario sagas, 3 stalled orders, 1 stalled trip
    assert completed == 1
    assert cycle_count == 3  # completed, failed, compensated
    assert _value(open_alerts) == 5  # the alerter opened one per stalled saga
    assert "saga_id" not in labels


def _demo_config() -> Path:
    from importlib import resources

    return Path(str(resources.files("sagascope.demo_services").joinpath("demo.toml")))


@needs(PROMETHEUS)
@pytest.mark.slow
def test_prometheus_scrapes_the_demo_and_its_stalled_count_is_what_sagascope_stalled_reports(tmp_path):
    port = free_port()
    sagas = 40
    env = {**_env(), "SAGASCOPE_STORE_PATH": str(tmp_path / "store")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "sagascope", "demo", "--no-dashboard", "--rate", "10",
         "--max-sagas", str(sagas), "--metrics-port", str(port), "--duration", "300"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # A scrape shares the demo's one store with its collector: give it a few seconds.
    prometheus = Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{port}"], scrape_interval_s=3)
    try:
        assert demo.stdout is not None
        printed = read_lines_until(demo.stdout, lambda line: re.search(r"saga metrics at (\S+)", line), 90)
        assert printed and printed.group(1) == f"http://127.0.0.1:{port}/metrics"
        prometheus.start()
        wait_until(
            lambda: prometheus.query(f"sum(sagascope_sagas_started_total) == {sagas}"),
            180, "every demo saga counted",
        )
        # Every saga has finished or stalled (the packaged config: thresholds of 20-30 s), so
        # the count no longer moves and `sagascope stalled` must see the same after the demo stops.
        wait_until(
            lambda: not prometheus.query(
                'sum(sagascope_sagas{status=~"running|compensating"}) > 0'
            ) and prometheus.query(
                "max(changes(sagascope_sagas_stalled[20s])) == 0 "
                "and min(count_over_time(sagascope_sagas_stalled[20s])) >= 3"
            ),
            240, "no saga running and the stalled counts steady over three scrapes",
        )
        by_step = {
            (r["metric"]["saga_type"], r["metric"]["step"]): float(r["value"][1])
            for r in prometheus.query("sagascope_sagas_stalled")
        }
        types = {r["metric"]["saga_type"] for r in prometheus.query("sagascope_sagas_started_total")}
        assert _value(prometheus.query("sagascope_saga_metrics_up")) == 1
        assert prometheus.query("sagascope_newest_message_age_seconds")
    finally:
        prometheus.stop()
        demo.send_signal(signal.SIGTERM)
        try:
            demo.communicate(timeout=60)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
    assert demo.returncode == 0
    assert types == {"order", "order-fulfillment", "shipment", "trip-booking"}

    listed = [json.loads(line) for line in subprocess.run(
        [sys.executable, "-m", "sagascope", "stalled", "--json", "--limit", "1000",
         "--config", str(_demo_config())],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout.splitlines()]
    expected: dict[tuple[str, str], float] = {}
    for s in listed:
        expected[(s["saga_type"], s["step"])] = expected.get((s["saga_type"], s["step"]), 0) + 1
    assert listed, "the demo's dropped messages leave some sagas stalled"
    assert by_step == expected
