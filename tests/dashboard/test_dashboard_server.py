"""The in-process server (``serve``) and ``sagascope dashboard``, on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from processes import end
from waiting import read_lines_until


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode("utf-8", errors="replace")


def test_served_dashboard_answers_on_loopback(served: Any) -> None:
    assert served.url.startswith("http://127.0.0.1:")
    assert get(f"{served.url}/_stcore/health") == (200, "ok")
    status, body = get(f"{served.url}/flow_explorer?saga=order-completed")
    assert status == 200
    assert "<html" in body.lower()


def _start_cli(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "sagascope", "dashboard", "--port", str(port),
         "--store-path", str(tmp_path / "store")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )


def _read_url(process: subprocess.Popen[str], deadline_s: float = 60) -> str:
    assert process.stdout is not None
    url = read_lines_until(
        process.stdout,
        lambda line: line.split(": ", 1)[1].strip() if line.startswith("sagascope dashboard: ") else "",
        deadline_s,
    )
    assert url, "sagascope dashboard printed no URL"
    return url


@pytest.mark.slow
def test_dashboard_command_serves_until_interrupted(tmp_path: Path, served: Any) -> None:
    process = _start_cli(tmp_path, 0)
    try:
        url = _read_url(process)
        assert get(f"{url}/_stcore/health") == (200, "ok")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
    finally:
        end(process)

    # A port already taken is a clear start-up error, not a hang.
    taken = int(served.url.rsplit(":", 1)[1])
    second = _start_cli(tmp_path, taken)
    try:
        _, err = second.communicate(timeout=60)
    finally:
        end(second)
    assert second.returncode == 1
    assert f"could not listen on 127.0.0.1:{taken}" in err


def test_dashboard_reads_a_shared_store_through_a_read_only_handle(store: Any) -> None:
    from sagascope.dashboard.runtime import read_only_view
    from sagascope.store import StoreError

    handle = read_only_view(store)
    assert handle is not None and handle.read_only and handle.database == store.database
    assert handle.query("SELECT count() FROM messages").scalar() == 0
    with pytest.raises(StoreError, match="read-only"):
        handle.command("TRUNCATE TABLE messages")
    with pytest.raises(StoreError):
        handle.query("INSERT INTO alert_acks (saga_type) VALUES ('x')")
    assert not store.read_only  # the demo's own handle still writes
