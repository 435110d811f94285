"""Start-up checks and the small pure pieces: topic matching, settings, encodings."""

from __future__ import annotations

import json

import pytest

from sagascope.collector import Collector
from sagascope.collector.consumer import topic_pattern
from sagascope.exceptions import ConfigError
from sagascope.settings import CollectorSettings, load_settings
from sagascope.store.audit import _canonical, _canonical_stdlib
from sagascope.store.base import encode_rows
from sagascope.store.timetext import clickhouse_ms


@pytest.mark.parametrize(
    ("topic", "matched"),
    [
        ("orders", True),
        ("payments.v2", True),
        ("__consumer_offsets", False),
        ("_sagascope.alerts", False),
        ("_sagascope.spans", True),
        ("orders-dlq", False),
    ],
)
def test_topics_are_matched_by_include_minus_exclude(topic, matched):
    pattern = topic_pattern(".*", r"^(__.*|_sagascope\.alerts|.*-dlq)$")
    assert bool(pattern.match(topic)) is matched


def test_include_matches_whole_names():
    assert not topic_pattern("orders", "").match("orders.v2")


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"include": "("}, "collector.include"),
        ({"exclude": "["}, "collector.exclude"),
        ({"batch_rows": 0}, "collector.batch_rows"),
        ({"flush_interval_s": 0}, "collector.flush_interval_s"),
        ({"payload_cap_bytes": 0}, "collector.payload_cap_bytes"),
        ({"group_id": ""}, "collector.group_id"),
    ],
)
def test_bad_settings_fail_at_start_naming_the_setting(store, overrides, setting):
    with pytest.raises(ConfigError, match=setting.replace(".", r"\.")):
        Collector(store, "127.0.0.1:9092", CollectorSettings(**overrides))


def test_correlation_and_redaction_rules_load_from_the_toml_file(tmp_path, store):
    config = tmp_path / "sagascope.toml"
    config.write_text(
        "[[collector.correlation]]\n"
        'topic = "legacy\\\\..*"\nsaga_id = "/order/id"\n\n'
        "[[collector.redaction]]\n"
        'pattern = "(\\\\d{4}-?){3}\\\\d{4}"\n'
    )
    settings = load_settings(config, environ={})
    assert settings.collector.correlation[0].saga_id == "/order/id"
    Collector(store, "127.0.0.1:9092", settings.collector)  # compiles the rules


def test_a_bad_rule_in_the_toml_file_names_it(tmp_path, store):
    config = tmp_path / "sagascope.toml"
    config.write_text('[[collector.redaction]]\npattern = "("\n')
    settings = load_settings(config, environ={})
    with pytest.raises(ConfigError, match=r"collector\.redaction\[0\]\.pattern"):
        Collector(store, "127.0.0.1:9092", settings.collector)


@pytest.mark.parametrize(
    "values",
    [
        ["orders", 3, 41, "1763800000.123", {"b": "1", "a": 'é\u2028\x00\x1f\x7f"\\'}, True, ""],
        ["🚀", 0, 18446744073709551615, {}, False, "tab\there\nnewline"],
    ],
)
def test_the_audit_digest_bytes_do_not_depend_on_the_json_library(values):
    assert _canonical(values) == _canonical_stdlib(values)


def test_rows_with_a_lone_surrogate_are_still_encoded():
    data = encode_rows([{"a": "x\ud800y"}, {"a": "ok"}])
    lines = data.decode("utf-8").splitlines()
    assert json.loads(lines[1]) == {"a": "ok"}
    assert json.loads(lines[0])["a"].startswith("x")


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (1763800000123, "1763800000.123"),
        (0, "1970-01-01 00:00:00.000"),
        (5, "1970-01-01 00:00:00.005"),
    ],
)
def test_times_are_written_in_a_form_clickhouse_cannot_misread(ms, text):
    assert clickhouse_ms(ms) == text
