"""The real dashboard served in a subprocess over a seeded store (when a page in Chromium is
idle is ``browser_harness``'s, the definition ``bench/bench_browser.py`` measures to)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from waiting import read_lines_until


@dataclass
class ServedDashboard:
    url: str
    process: subprocess.Popen[str]
    ids: dict[str, str]

    def command(self, line: str) -> str:
        """Send the server process a command (see dashboard_seeded_server.py); its reply."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def queries(self) -> dict[str, int]:
        """Store queries the server process ran so far: ``watermark`` checks and ``other``."""
        reply = self.command("queries")
        assert reply.startswith("QUERIES "), reply
        return {"watermark": 0, "other": 0, **json.loads(reply[len("QUERIES "):])}


@contextmanager
def serve_seeded(work: Path, refresh_s: float | None = None) -> Iterator[ServedDashboard]:
    """The dashboard served by ``serve()`` in a subprocess over a seeded chDB directory."""
    extra = [] if refresh_s is None else [str(refresh_s)]
    with serve_script("dashboard_seeded_server.py", work, extra) as dashboard:
        yield dashboard


@contextmanager
def serve_script(
    name: str, work: Path, extra: Sequence[str] = (), timeout_s: float = 60,
    prints_ids: bool = True,
) -> Iterator[ServedDashboard]:
    """Run the seeding server script ``name`` (beside this file) over ``work/store`` until it
    prints its URL (and ``SAGAS {...}``, with ``prints_ids``); stop it on leaving."""
    script = Path(__file__).with_name(name)
    process = subprocess.Popen(
        [sys.executable, str(script), str(work / "store"), *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=work,
    )
    assert process.stdout is not None and process.stdin is not None
    printed: dict[str, Any] = {"url": "", "ids": {}}

    def url_and_ids_printed(line: str) -> bool:
        if line.startswith("URL "):
            printed["url"] = line.split()[1]
        elif line.startswith("SAGAS "):
            printed["ids"] = json.loads(line[len("SAGAS "):])
        return bool(printed["url"] and (printed["ids"] or not prints_ids))

    read_lines_until(process.stdout, url_and_ids_printed, timeout_s)
    if not printed["url"]:
        process.kill()
        pytest.fail(f"the dashboard server subprocess {name} did not print its URL")
    yield ServedDashboard(url=printed["url"], process=process, ids=printed["ids"])
    process.stdin.close()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
