"""``sagascope alert --once`` and ``sagascope alerts`` on a real chDB store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from alert_rows import order_alert
from processes import end
from seeding import order_saga, seed

from sagascope.cli import main


@pytest.fixture
def cli_args(store, chdb_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray ./sagascope.toml
    for name in ("SAGASCOPE_CONFIG", "SAGASCOPE_ALERTS_SINKS", "SAGASCOPE_ALERTS_DEFAULT_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    return ["--store-path", chdb_path, "--database", store.database]


def test_alert_once_applies_rules_from_the_config_file(store, cli_args, tmp_path, capsys):
    now = datetime.now(UTC)
    seed(
        store,
        order_saga("order-cli-1", "stalled", start=now - timedelta(seconds=100)),
        order_saga("order-cli-2", "completed", start=now - timedelta(hours=1)),
    )
    store.insert("progress", [{
        "group_id": "g", "collector_id": "c", "topic": "orders", "partition": 0,
        "stored_offset": 0, "end_offset": 0, "read_until": now, "updated_at": now,
    }])
    config = tmp_path / "sagascope.toml"
    config.write_text(
        "[alerts]\ndefault_threshold_s = 300\nsinks = \"log\"\n\n"
        "[[alerts.rules]]\nsaga_type = \"order-fulfillment\"\nstep = \"payment\"\nthreshold_s = 90\n"
    )
    assert main(["alert", "--once", "--config", str(config), *cli_args]) == 0
    out = capsys.readouterr().out
    assert "opened   order-cli-1 order-fulfillment after payment threshold 90s" in out
    assert "order-cli-2" not in out
    assert "opened 1" in out

    assert main(["alert", "--once", "--config", str(config), *cli_args]) == 0
    assert "opened 0, resolved 0, open 1" in capsys.readouterr().out

    assert main(["alerts", *cli_args]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0] == "1 open (0 acknowledged), 0 silenced, 0 resolved in the last 24 h"
    assert table.splitlines()[1].startswith("STATE")
    assert "order-cli-1" in table and "flow_explorer?saga=order-cli-1" in table

    assert main(["alerts", "--json", "--state", "open", *cli_args]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    alert = json.loads(line)
    assert (alert["saga_id"], alert["state"], alert["threshold_s"]) == ("order-cli-1", "open", 90.0)


def test_alerts_lists_and_counts_silenced_ones_apart_from_open_ones(store, cli_args, capsys):
    from sagascope.queries import acknowledge

    now = datetime.now(UTC)
    store.insert("alerts", [order_alert("p1", now=now), order_alert("p2", now=now),
                            order_alert("s1", now=now, step="shipping"),
                            order_alert("r1", now=now, state="resolved", resolved_ago_s=300)])
    acknowledge(store, "order-fulfillment", "shipping", action="silenced", by="dana",
                until=now + timedelta(hours=1))
    assert main(["alerts", *cli_args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "2 open (0 acknowledged), 1 silenced, 1 resolved in the last 24 h"
    assert [line.split()[:2] for line in lines[2:]] == [
        ["open", "order-p1"], ["open", "order-p2"], ["silenced", "order-s1"],
        ["resolved", "order-r1"]]
    assert main(["alerts", "--json", "--state", "open", *cli_args]) == 0
    opened = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(a["saga_id"] for a in opened) == ["order-p1", "order-p2"]
    assert main(["alerts", "--json", "--state", "silenced", *cli_args]) == 0
    (silenced,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (silenced["saga_id"], silenced["state"], silenced["group_state"]) == (
        "order-s1", "open", "silenced")


def test_alerts_groups_say_who_handles_them_and_what_they_wait_for(store, cli_args, capsys):
    from sagascope.queries import acknowledge

    now = datetime.now(UTC)
    store.insert("alerts", [order_alert("p1", now=now), order_alert("p2", now=now)])
    acknowledge(store, "order-fulfillment", "payment", action="acknowledged", by="sam",
                note="on it")
    assert main(["alerts", "--groups", *cli_args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:5] == ["STATE", "TYPE", "STEP", "OPEN", "RESOLVED"]
    assert lines[2].split()[:5] == ["acknowledged", "order-fulfillment", "payment", "2", "0"]
    assert " sam at " in lines[2] and lines[2].endswith("PaymentReceived ×2")
    assert main(["alerts", "--groups", "--json", *cli_args]) == 0
    (group,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (group["state"], group["handled_by"], group["note"], group["waiting_for"]) == (
        "acknowledged", "sam", "on it", {"PaymentReceived": 2})


def test_alerts_with_none_says_so(cli_args, capsys):
    assert main(["alerts", *cli_args]) == 0
    assert capsys.readouterr().out.strip() == "no alerts"


def test_alert_names_a_bad_sink_setting(cli_args, capsys):
    assert main(["alert", "--once", "--sinks", "log,pager", *cli_args]) == 2
    assert "alerts.sinks" in capsys.readouterr().err


_SEED_SCRIPT = """
import sys
from datetime import UTC, datetime, timedelta
sys.path.insert(0, sys.argv[2])
from seeding import order_saga, seed
from sagascope.store import ensure_schema, open_store
store = open_store(path=sys.argv[1], database="alerting")
ensure_schema(store)
now = datetime.now(UTC)
seed(store, order_saga("order-proc-1", "stalled", start=now - timedelta(hours=1)))
store.insert("progress", [{
    "group_id": "g", "collector_id": "c", "topic": "orders", "partition": 0,
    "stored_offset": 0, "end_offset": 0, "read_until": now, "updated_at": now,
}])
"""


@pytest.mark.slow
def test_alert_command_runs_until_sigterm_and_posts_to_the_webhook(tmp_path, receiver):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    # chDB opens one directory per process: this store lives in the subprocesses only.
    store_dir = str(tmp_path / "store")
    tests_dir = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGASCOPE_")}
    subprocess.run(
        [sys.executable, "-c", _SEED_SCRIPT, store_dir, tests_dir], check=True, env=env, timeout=120
    )
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sagascope", "alert", "--store-path", store_dir,
            "--database", "alerting", "--interval", "0.2", "--default-threshold", "60",
            "--sinks", "log,webhook", "--webhook-url", receiver.url,
        ],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
    )
    try:
        (body,) = receiver.wait_for(1, timeout_s=60)
        assert (body["event"], body["saga_id"]) == ("opened", "order-proc-1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        end(proc)
    assert "alert opened saga_id=order-proc-1" in (proc.stderr.read() if proc.stderr else "")
