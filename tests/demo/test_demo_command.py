"""``sagascope demo`` as a user runs it: one command, a dashboard URL, Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from waiting import read_lines_until, wait_until

from sagascope.embedded import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FIRST_TOPICS = ("orders.commands", "checkout.events", "shipping.commands", "travel.commands",
                "legacy.wms.events")


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _stored_by_topic(metrics_url: str) -> dict[str, float]:
    try:
        text = urllib.request.urlopen(metrics_url, timeout=2).read().decode()
    except OSError:
        return {}
    stored: dict[str, float] = {}
    for m in re.finditer(r'^\w+_stored_total\{topic="([^"]+)"\} ([0-9.e+]+)$', text, re.M):
        stored[m.group(1)] = float(m.group(2))
    return stored


def _read_store(path: Path) -> dict[str, object]:
    # A chDB directory opens in one process at a time (this one holds the tests' own).
    script = (
        "import json, sys\n"
        "from sagascope.store import open_store\n"
        "s = open_store('', sys.argv[1], 'sagascope', read_only=True)\n"
        "q = lambda sql: s.query(sql).rows\n"
        "print(json.dumps({'types': sorted(r[0] for r in q(\"SELECT DISTINCT saga_type FROM "
        "messages WHERE saga_type != ''\")),"
        " 'legacy': q(\"SELECT count(), countIf(correlation LIKE 'rule%') FROM messages "
        "WHERE source = 'legacy-wms'\")[0]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_serves_the_dashboard_and_stops_cleanly(tmp_path, stop_signal):
    metrics_port = free_port()
    env = {**os.environ, "SAGASCOPE_STORE_PATH": str(tmp_path / "store"),
           "SAGASCOPE_COLLECTOR_METRICS_PORT": str(metrics_port)}
    env.pop("SAGASCOPE_CONFIG", None)
    truth_file = tmp_path / "truth.jsonl"
    # No sagascope.toml in the working directory: the packaged demo config applies.
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagascope", "demo", "--port", "0", "--rate", "20",
         "--ground-truth", str(truth_file)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        started = time.monotonic()  # one 90 s timeout for the URLs and the first rows
        printed: dict[str, str] = {}

        def url_printed(line: str) -> str | None:
            if m := re.search(r"embedded broker at (\S+)", line):
                printed["broker"] = m.group(1)
            if m := re.search(r"dashboard at (\S+)", line):
                printed["url"] = m.group(1)
            return printed.get("url")

        assert proc.stdout is not None
        url = read_lines_until(proc.stdout, url_printed, 90)
        broker = printed.get("broker")
        assert url and broker, f"no dashboard URL printed; stderr: {proc.stderr.read()[-2000:]}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
        metrics = f"http://127.0.0.1:{metrics_port}/metrics"

        def first_rows() -> bool:
            stored = _stored_by_topic(metrics)
            return all(stored.get(topic, 0) > 0 for topic in FIRST_TOPICS)

        wait_until(
            first_rows, 90 - (time.monotonic() - started),
            lambda: f"the four flows in the store (stored: {_stored_by_topic(metrics)})", 0.5,
        )
        children = _children(proc.pid)
        assert children, "the embedded broker runs as a child process"
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert not any(Path(f"/proc/{pid}").exists() for pid in children), "a child outlived the demo"
    host, port = broker.rsplit(":", 1)
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=1):
        pass
    assert re.search(r"\d+ sagas in \d+ s .*peak memory \d+ MB", err)
    assert re.search(r"first saga stored after [0-9.]+ s: http://\S+/flow_explorer\?saga=ord-", out)
    truths = [json.loads(line) for line in truth_file.read_text().splitlines()]
    assert {t["plan"]["saga_type"] for t in truths} == {
        "order", "order-fulfillment", "shipment", "trip-booking"}
    stored = _read_store(tmp_path / "store")
    assert stored["types"] == ["order", "order-fulfillment", "shipment", "trip-booking"]
    legacy_total, legacy_by_rule = stored["legacy"]
    assert legacy_total > 0 and legacy_by_rule == legacy_total


def test_the_packaged_demo_config_is_the_repository_sagascope_toml():
    packaged = REPO / "demo_services" / "demo.toml"
    assert packaged.read_text() == (REPO / "sagascope.toml").read_text()


def test_a_taken_dashboard_port_fails_fast_naming_the_flag_and_leaves_nothing_running(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "SAGASCOPE_STORE_PATH": str(tmp_path / "store")}
        env.pop("SAGASCOPE_CONFIG", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "sagascope", "demo", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1
    assert "--port" in err and str(port) in err
    broker = re.search(r"embedded broker at (\S+)", out)
    assert broker
    host, broker_port = broker.group(1).rsplit(":", 1)
    with pytest.raises(OSError), socket.create_connection((host, int(broker_port)), timeout=1):
        pass
