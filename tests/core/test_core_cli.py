"""The console script: subcommands, clear errors for unknown ones and bad configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sagascope.cli import COMMANDS, main


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sagascope", *args],
        capture_output=True, text=True, timeout=60, cwd=cwd,
    )


def test_help_lists_every_subcommand() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout


def test_unknown_subcommand_is_a_clear_error() -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "unknown command 'frobnicate'" in result.stderr


def test_bad_configuration_fails_at_start_naming_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[collector]\nbatch_rows = \"lots\"\n")
    result = run_cli("stalled", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "collector.batch_rows" in result.stderr


def test_no_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
