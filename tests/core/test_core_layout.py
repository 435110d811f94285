"""The installed layout: every part folder is a sagascope.* package, and the code is lint-clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARTS = {"src/sagascope": "sagascope", "instrumentation": "sagascope.instrumentation",
         "store": "sagascope.store", "collector": "sagascope.collector",
         "queries": "sagascope.queries", "alerter": "sagascope.alerter",
         "dashboard": "sagascope.dashboard", "demo_services": "sagascope.demo_services"}


def test_every_package_folder_is_listed_for_setuptools() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in PARTS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found - listed == set(), "add these to [tool.setuptools] packages"


@pytest.mark.skipif(shutil.which("ruff") is None and not Path(sys.executable).with_name("ruff").exists(),
                    reason="ruff not installed")
def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff) if ruff.exists() else "ruff", "check", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.slow
def test_mypy_is_clean() -> None:
    result = subprocess.run(["bash", "scripts/typecheck.sh"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stdout[-4000:]
