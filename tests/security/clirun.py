"""Running the ``sagascope`` CLI as a user does: a subprocess with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from waiting import wait_until


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without any SAGASCOPE_* variable of the caller, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGASCOPE_")}
    env.update(extra or {})
    return env


def sagascope(
    args: Sequence[str], cwd: Path, *, env: Mapping[str, str] | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``sagascope ARGS`` to completion (bounded by ``timeout_s``), capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "sagascope", *args], cwd=cwd, env=clean_env(env),
        capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
    )


def start_sagascope(
    args: Sequence[str], cwd: Path, *, env: Mapping[str, str] | None = None, log: Path
) -> subprocess.Popen[bytes]:
    """Start a long-running ``sagascope ARGS`` (collect, dashboard) with output into ``log``."""
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "sagascope", *args], cwd=cwd, env=clean_env(env),
        stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )


def _running(process: subprocess.Popen[bytes], log: Path) -> bool:
    assert process.poll() is None, f"exited with {process.returncode}: {log.read_text()[-3000:]}"
    return True


def wait_for_log(process: subprocess.Popen[bytes], log: Path, text: str, timeout_s: float) -> None:
    """Wait until ``text`` is in the ``log`` of the running ``process``; fail with the log if
    the process exits or the time runs out."""
    wait_until(
        lambda: _running(process, log) and text in log.read_text(), timeout_s,
        lambda: f"{text!r} in the log: {log.read_text()[-3000:]}",
    )


def wait_for_page(
    url: str, process: subprocess.Popen[bytes], log: Path, ready: Callable[[str], bool],
    timeout_s: float, what: str,
) -> str:
    """GET ``url`` (served by ``process``) until ``ready(text)``; the text. Fails with the log
    if the process exits or the time runs out."""

    def page() -> str | None:
        _running(process, log)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return None
        return text if ready(text) else None

    return wait_until(page, timeout_s, lambda: f"{what}: {log.read_text()[-3000:]}", 0.2)
