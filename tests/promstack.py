"""The real Prometheus and Alertmanager from Debian's packages, on free loopback ports.

    from promstack import Alertmanager, Prometheus, needs
    pytestmark = needs("prometheus")

Each runs as a child process with its own temporary storage; ``stop()`` ends it (by its pid).
Tests skip, saying why, where the binaries are not installed (``scripts/setup-dev.sh``
installs them with apt).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from processes import end
from waiting import wait_until

from sagascope.embedded import free_port

PROMETHEUS = "prometheus"
PROMTOOL = "promtool"
ALERTMANAGER = "prometheus-alertmanager"
AMTOOL = "amtool"


def needs(*binaries: str) -> pytest.MarkDecorator:
    """Skip unless every binary is on PATH."""
    missing = [b for b in binaries if shutil.which(b) is None]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"{', '.join(missing)} not installed (apt-get install prometheus "
        "prometheus-alertmanager; scripts/setup-dev.sh does it as root)",
    )


def http_json(url: str, *, data: Any = None, timeout_s: float = 5.0) -> Any:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"} if body else {}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read() or b"null")


class _Program:
    name = ""
    binary = ""
    #: The option naming its data directory.
    storage_option = ""
    more_args: tuple[str, ...] = ()
    config_path: Path

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _args(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"{self.storage_option}={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *self.more_args,
            "--log.level=warn",
        ]

    def start(self) -> _Program:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self._args(), stdout=log, stderr=log)
        wait_until(self._ready, 30, f"{self.name} ready on {self.url}")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        end(self.proc, grace_s=15)
        self.proc = None


class Prometheus(_Program):
    """Prometheus scraping ``targets`` every ``scrape_interval_s``, with ``rule_files``."""

    name = "prometheus"
    binary = PROMETHEUS
    storage_option = "--storage.tsdb.path"

    def __init__(
        self,
        workdir: Path,
        targets: list[str],
        *,
        scrape_interval_s: float = 1.0,
        rule_files: tuple[str, ...] = (),
    ) -> None:
        super().__init__(workdir)
        config = {
            "global": {
                "scrape_interval": f"{round(scrape_interval_s * 1000)}ms",
                "evaluation_interval": f"{round(scrape_interval_s * 1000)}ms",
            },
            "rule_files": list(rule_files),
            "scrape_configs": [
                {
                    "job_name": "sagascope",
                    # As long as the interval allows: a loaded machine makes scrapes slow.
                    "scrape_timeout": f"{round(scrape_interval_s * 1000)}ms",
                    "static_configs": [{"targets": targets}],
                }
            ],
        }
        # JSON is YAML: no YAML library needed.
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(json.dumps(config, indent=2))

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        answer = http_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])


class Alertmanager(_Program):
    """Alertmanager (no clustering) with ``config`` (a dict written as JSON, or YAML text)."""

    name = "alertmanager"
    binary = ALERTMANAGER
    storage_option = "--storage.path"
    more_args = ("--cluster.listen-address=",)

    def __init__(self, workdir: Path, config: dict[str, Any] | str, port: int | None = None):
        super().__init__(workdir, port)
        self.config_path = workdir / "alertmanager.yml"
        text = config if isinstance(config, str) else json.dumps(config, indent=2)
        self.config_path.write_text(text)

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds as active (firing, not resolved)."""
        return list(http_json(f"{self.url}/api/v2/alerts"))


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """A route sending every group to ``webhook_url`` at once, resolved notices included."""
    return {
        "route": {
            "receiver": "test",
            "group_by": ["alertname", "saga_type", "step"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "test", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}
        ],
    }
