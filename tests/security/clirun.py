"""Running the ``sagascope`` CLI as a user does: a subprocess with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


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
