"""A non-editable wheel of the repo, installed with its base dependencies in a clean venv."""

from __future__ import annotations

import shutil
import sys
import venv
from pathlib import Path

import pytest
from packaging_venv import check, run

REPO = Path(__file__).resolve().parents[2]
_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".sagascope",
    "node_modules", "screenshots",
)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sagascope wheel, built from a copy of the tree (the build leaves no files in the repo)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=_IGNORE)
    if not (source / "README.md").exists():
        # pyproject names README.md as the long description; the tree may not have it yet.
        (source / "README.md").write_text("# sagascope\n")
    out = work / "dist"
    check(run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
               str(source)], timeout_s=180))
    (built,) = out.glob("sagascope-*.whl")
    return built


@pytest.fixture(scope="session")
def base_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with ``pip install sagascope.whl``: base deps only."""
    env_dir = tmp_path_factory.mktemp("venv") / "base"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    check(run([str(python), "-m", "pip", "install", "-q", str(wheel)], timeout_s=240))
    return env_dir
