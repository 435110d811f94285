"""The embedded store's owner: its file, its tokens, what readers and writers beside it may do,
and what a command says when the store is held by a process it cannot reach."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest

from sagascope.embedded import free_port
from sagascope.store import read_owner

TESTS = Path(__file__).resolve().parents[1]

# Owns (or, with "hold", merely opens) the store at argv[1], with one stalled saga in it,
# says "ready", and keeps it until its stdin closes.
_HOLDER = """
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
sys.path.insert(0, {tests!r})
from seeding import SagaScript, seed
from sagascope.store import ChdbStore, ensure_schema, open_store
if sys.argv[2] == "own":
    store = open_store(path=sys.argv[1], serve_reads=True)
else:
    store = ChdbStore(sys.argv[1], "sagascope")
ensure_schema(store)
saga = SagaScript("stuck-1", "order-fulfillment", start=datetime.now(UTC) - timedelta(hours=1))
saga.command("ReserveStock", source="orchestrator", step="reserve-stock")
seed(store, saga)
print("ready", flush=True)
sys.stdin.read()
"""


def _start_holder(store_path: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER.format(tests=str(TESTS)), str(store_path), mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(60)


@pytest.fixture
def owned(tmp_path: Path) -> Iterator[Path]:
    """A store owned and served by another process."""
    store_path = tmp_path / "store"
    proc = _start_holder(store_path, "own")
    try:
        yield store_path
    finally:
        _stop(proc)


def _client(store_path: Path, token_key: str = "token") -> clickhouse_connect.driver.Client:
    owner = json.loads((store_path / "owner.json").read_text())
    return clickhouse_connect.get_client(host="127.0.0.1", port=owner["port"], username="me",
                                         password=owner[token_key], database="sagascope")


def _sagascope(*args: str, store_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "SAGASCOPE_STORE_PATH": str(store_path), **env}
    environ.pop("SAGASCOPE_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "sagascope", *args], cwd=store_path.parent,
                          env=environ, capture_output=True, text=True, timeout=120)


def test_the_owner_file_names_the_process_and_only_its_user_reads_it(owned: Path) -> None:
    file = owned / "owner.json"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    owner = read_owner(str(owned))
    assert owner is not None
    assert Path(f"/proc/{owner.pid}").exists()
    assert owner.command.split()[:2] == [sys.executable, "-c"]
    assert owner.token and owner.alerts_token and owner.token != owner.alerts_token


def test_a_dead_owners_file_is_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    file = tmp_path / "owner.json"
    file.write_text(json.dumps({"pid": dead.pid, "command": "sagascope collect", "port": 1,
                                "token": "t", "alerts_token": "a"}))
    assert read_owner(str(tmp_path)) is None
    assert not file.exists()


@pytest.mark.parametrize("statement", [
    "INSERT INTO messages (topic, partition, offset) VALUES ('x', 0, 999)",
    "ALTER TABLE messages DELETE WHERE 1",
    "DROP TABLE messages",
    "SELECT count() FROM messages SETTINGS readonly=0",
])
def test_the_read_token_cannot_write(owned: Path, statement: str) -> None:
    client = _client(owned)
    before = client.query("SELECT count() FROM messages").result_rows
    with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError, match="164"):
        client.command(statement)
    assert client.query("SELECT count() FROM messages").result_rows == before


def test_the_alerts_token_inserts_into_alert_tables_only(owned: Path) -> None:
    client = _client(owned, "alerts_token")
    # As the alerter and the dashboard insert: rows in the body, in a format.
    client.raw_insert("alert_acks", ["saga_type", "step", "action"],
                      insert_block=b'{"saga_type": "t", "step": "s", "action": "ack"}\n',
                      fmt="JSONEachRow")
    assert client.query("SELECT count() FROM alert_acks").result_rows == [(1,)]
    with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError, match="164"):
        client.raw_insert("messages", ["topic"], insert_block=b'{"topic": "x"}\n',
                          fmt="JSONEachRow")
    with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError, match="164"):
        client.command("ALTER TABLE alerts DELETE WHERE 1")


def test_alert_beside_the_owner_records_alerts_through_it(owned: Path) -> None:
    result = _sagascope("alert", "--once", "--default-threshold", "60", store_path=owned)
    assert result.returncode == 0, result.stderr
    assert "through http://127.0.0.1:" in result.stdout
    assert "stuck-1" in result.stdout
    rows = _client(owned).query("SELECT saga_id, state FROM alerts FINAL").result_rows
    assert rows == [("stuck-1", "open")]


def test_collect_beside_the_owner_names_it_and_stops(owned: Path, bootstrap_servers: str) -> None:
    owner = read_owner(str(owned))
    assert owner is not None
    result = _sagascope("collect", "--bootstrap-servers", bootstrap_servers, store_path=owned)
    assert result.returncode == 1
    assert f"owned by pid {owner.pid}" in result.stderr
    assert "another --store-path" in result.stderr


def test_a_store_held_by_a_process_that_does_not_serve_names_it(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    proc = _start_holder(store_path, "hold")
    try:
        result = _sagascope("flow", "stuck-1", store_path=store_path)
    finally:
        _stop(proc)
    assert result.returncode == 1
    assert f"held by pid {proc.pid} (" in result.stderr
    assert "does not serve it" in result.stderr
    assert "Cannot lock file" not in result.stderr + result.stdout, "chDB's own error is spared"


def test_an_owner_file_whose_pid_holds_nothing_is_removed(tmp_path: Path) -> None:
    # The pid lives (this test process) but holds no store and serves nothing: a reused pid.
    store_path = tmp_path / "store"
    store_path.mkdir()
    file = store_path / "owner.json"
    file.write_text(json.dumps({"pid": os.getpid(), "command": "sagascope collect",
                                "port": free_port(), "token": "t", "alerts_token": "a"}))
    result = _sagascope("alerts", store_path=store_path)
    assert "does not answer" not in result.stderr
    assert not file.exists()


def test_clickhouse_compressed_framing_is_refused_not_garbled(owned: Path) -> None:
    owner = read_owner(str(owned))
    assert owner is not None
    request = urllib.request.Request(
        f"{owner.url}/?compress=1&query=SELECT+1", headers={"X-ClickHouse-Key": owner.token})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 500
    assert b"(UNSUPPORTED_METHOD)" in refused.value.read()
