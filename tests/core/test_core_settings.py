"""The one settings object: file, environment and flags, and clear errors naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagascope.exceptions import ConfigError
from sagascope.settings import load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sagascope.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.collector.batch_rows == 20000
    assert settings.store.url == ""


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "[collector]\nbatch_rows = 100\nflush_interval_s = 2.5\n")
    from_file = load_settings(path, environ={})
    assert (from_file.collector.batch_rows, from_file.collector.flush_interval_s) == (100, 2.5)
    from_env = load_settings(path, environ={"SAGASCOPE_COLLECTOR_BATCH_ROWS": "200"})
    assert from_env.collector.batch_rows == 200
    from_flag = load_settings(
        path, {"collector.batch_rows": 300}, environ={"SAGASCOPE_COLLECTOR_BATCH_ROWS": "200"}
    )
    assert from_flag.collector.batch_rows == 300


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[store]\ndatabase = "audit"\n')
    settings = load_settings(environ={"SAGASCOPE_CONFIG": str(path)})
    assert settings.store.database == "audit"


def test_rule_lists_become_typed_rules(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[collector.correlation]]
topic = "legacy\\\\..*"
saga_id = "/order/id"
saga_type_value = "order-fulfillment"

[[collector.redaction]]
pattern = "\\\\b\\\\d{16}\\\\b"
""",
    )
    settings = load_settings(path, environ={})
    (rule,) = settings.collector.correlation
    assert (rule.topic, rule.saga_id, rule.key_fallback) == (r"legacy\..*", "/order/id", True)
    assert settings.collector.redaction[0].pattern == r"\b\d{16}\b"


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ("[collector]\nbatch_rowz = 1\n", {}, "batch_rowz"),
        ("[colector]\n", {}, "colector"),
        ("", {"SAGASCOPE_COLLECTOR_BATCH_ROWS": "many"}, "collector.batch_rows"),
        ("[collector]\nflush_interval_s = \"soon\"\n", {}, "collector.flush_interval_s"),
        ("[[collector.correlation]]\nsaga_id = \"/id\"\n", {}, "collector.correlation[0]"),
        ("[collector\n", {}, "not valid TOML"),
    ],
)
def test_bad_configuration_names_the_setting(
    tmp_path: Path, text: str, env: dict[str, str], named: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        load_settings(path, environ=env)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})
