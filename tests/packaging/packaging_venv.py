"""Running commands in the test venvs.

Imported by name: pytest's prepend import mode puts this folder on sys.path.
"""

from __future__ import annotations

import os
import subprocess


def run(args: list[str], timeout_s: float = 120, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(kwargs.pop("env", {}))
    # Never the repo: `python -c` puts the working directory on sys.path.
    kwargs.setdefault("cwd", "/")
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout_s, env=env, **kwargs
    )


def check(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"{proc.args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc
