"""Ending the child processes tests start (servers, stunnel, Prometheus): politely, then not."""

from __future__ import annotations

import subprocess


def end(process: subprocess.Popen[bytes] | subprocess.Popen[str] | None, grace_s: float = 10) -> None:
    """Stop ``process`` if it still runs: SIGTERM, then SIGKILL after ``grace_s``; reaped."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
