"""Record -> row: contract headers, correlation rules, redaction, bad input never raising."""

from __future__ import annotations

import hashlib
import json

import pytest
from collector_helpers import make_record

from sagascope.collector.decode.correlate import Correlator, RuleError, parse_event_time
from sagascope.collector.decode.redact import Redactor
from sagascope.collector.decode.rows import DecodeContext, decode_message, decode_span
from sagascope.exceptions import ConfigError
from sagascope.settings import CorrelationRule, RedactionRule
from sagascope.store.headers import rebuild

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
INGEST_MS = 1_763_800_001_000


def ctx(correlation=(), redaction=(), cap=65536) -> DecodeContext:
    return DecodeContext(Correlator(correlation), Redactor(redaction), cap)


def test_contract_headers_fill_the_saga_columns():
    headers = [
        ("traceparent", TRACEPARENT),
        ("ce_id", b"m-1"),
        ("ce_source", b"payment"),
        ("ce_type", b"PaymentReceived"),
        ("ce_time", b"2025-11-22T10:15:30.123Z"),
        ("ce_sagaid", b"order-123"),
        ("ce_sagatype", b"order-fulfillment"),
        ("ce_kind", b"event"),
        ("ce_causationid", b"m-0"),
        ("ce_step", b"payment"),
        ("ce_sagastatus", b"completed"),
        ("ce_compensates", b""),
    ]
    row = decode_message(
        make_record(b'{"a": 1}', headers=headers, key=b"order-123"), ctx(), INGEST_MS
    )
    assert row["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert row["span_id"] == "b7ad6b7169203331"
    assert (row["saga_id"], row["saga_type"], row["type"], row["source"]) == (
        "order-123",
        "order-fulfillment",
        "PaymentReceived",
        "payment",
    )
    assert (
        row["message_id"],
        row["causation_id"],
        row["kind"],
        row["step"],
        row["saga_status"],
    ) == (
        "m-1",
        "m-0",
        "event",
        "payment",
        "completed",
    )
    assert row["event_time"] == "1763806530.123"
    assert row["kafka_time"] == "1763800000.123"
    assert row["correlation"] == "headers"
    assert row["parse_error"] == ""
    # Every header a column reproduces is stored once, in its column, and rebuilt on read.
    assert row["headers"] == {}
    assert rebuild({**row, "event_time": 1763806530123}) == {k: v.decode() for k, v in headers}


def test_traceparent_alone_gives_the_trace_id():
    row = decode_message(
        make_record(b"{}", headers=[("traceparent", TRACEPARENT)]), ctx(), INGEST_MS
    )
    assert row["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert row["saga_id"] == ""
    assert row["correlation"] == "traceparent"


def test_no_headers_is_stored_without_error():
    row = decode_message(make_record(b'{"x": 1}'), ctx(), INGEST_MS)
    assert row["correlation"] == "none"
    assert row["parse_error"] == ""
    assert row["payload"] == '{"x": 1}'


@pytest.mark.parametrize(
    ("value", "headers", "error"),
    [
        (b"{not json", [], "not valid JSON"),
        (b'{"a": "\xff\xfe"}', [], "not valid UTF-8"),
        (b"{}", [("traceparent", b"00-zz-1-01")], "malformed traceparent"),
        (b"{}", [("traceparent", b"00-" + b"0" * 32 + b"-b7ad6b7169203331-01")], "all-zero"),
        (b"{}", [("ce_sagaid", b"\xff")], "not valid UTF-8"),
        (b"{}", [("ce_time", b"yesterday")], "malformed ce_time"),
        (b"{}", [("ce_time", b"1969-07-20T20:17:40.000Z")], "outside the storable range"),
        (b"{}", [("ce_time", b"2300-01-01T00:00:00.000Z")], "outside the storable range"),
    ],
)
def test_bad_records_become_rows_with_a_parse_error(value, headers, error):
    row = decode_message(make_record(value, headers=headers), ctx(), INGEST_MS)
    assert error in row["parse_error"]
    assert row["payload_sha256"] == hashlib.sha256(value).hexdigest()
    assert row["payload_size"] == len(value)


def test_a_payload_over_the_cap_is_truncated_with_size_and_hash_of_the_whole():
    value = json.dumps({"blob": "é" * 3000}).encode()
    row = decode_message(make_record(value), ctx(cap=1001), INGEST_MS)
    assert row["payload_truncated"] is True
    assert len(row["payload"].encode()) <= 1001
    assert row["payload_size"] == len(value)
    assert row["payload_sha256"] == hashlib.sha256(value).hexdigest()
    assert "exceeds the 1001-byte cap" in row["parse_error"]


def test_empty_value_is_a_tombstone_not_an_error():
    row = decode_message(make_record(None, key=b"k"), ctx(), INGEST_MS)
    assert row["parse_error"] == ""
    assert row["payload"] == ""
    assert row["kafka_key"] == "k"


def test_correlation_rule_by_json_pointer_and_regex():
    rule = CorrelationRule(
        topic=r"legacy\..*",
        saga_id="/order/id",
        type=r"re:\"event\":\s*\"(\w+)\"",
        event_time="/at",
        saga_type_value="order-fulfillment",
        source="/by",
    )
    value = b'{"order": {"id": 42}, "event": "Shipped", "at": 1763806530123, "by": "wms"}'
    row = decode_message(
        make_record(value, topic="legacy.wms", key=b"other"), ctx([rule]), INGEST_MS
    )
    assert (row["saga_id"], row["type"], row["saga_type"], row["source"]) == (
        "42",
        "Shipped",
        "order-fulfillment",
        "wms",
    )
    assert row["event_time"] == "1763806530.123"
    assert row["correlation"] == r"rule:legacy\..*"


def test_correlation_rule_falls_back_to_the_kafka_key():
    rule = CorrelationRule(topic="legacy", saga_id="/missing")
    row = decode_message(make_record(b"{}", topic="legacy", key=b"order-7"), ctx([rule]), INGEST_MS)
    assert (row["saga_id"], row["correlation"]) == ("order-7", "key")


def test_contract_headers_win_over_rules():
    rule = CorrelationRule(topic="t", saga_id="/id")
    record = make_record(
        b'{"id": "from-payload"}', topic="t", headers=[("ce_sagaid", b"from-header")]
    )
    row = decode_message(record, ctx([rule]), INGEST_MS)
    assert (row["saga_id"], row["correlation"]) == ("from-header", "headers")


def test_rule_regex_over_a_non_json_payload():
    rule = CorrelationRule(topic="t", saga_id=r"re:order-(\d+)")
    row = decode_message(make_record(b"ship order-99 now", topic="t"), ctx([rule]), INGEST_MS)
    assert row["saga_id"] == "99"
    assert "not valid JSON" in row["parse_error"]


def test_redaction_by_path_with_wildcard_and_by_pattern():
    rules = [
        RedactionRule(path="/payment/card/number"),
        RedactionRule(path="/items/*/secret", replacement="***"),
        RedactionRule(pattern=r"\b\d{4}-\d{4}-\d{4}-\d{4}\b", replacement="[CARD]"),
    ]
    value = json.dumps(
        {
            "payment": {"card": {"number": "4111111111111111", "holder": "A"}},
            "items": [{"secret": "s1"}, {"secret": "s2", "n": 1}],
            "note": "paid with 4111-1111-1111-1111 today",
        }
    ).encode()
    row = decode_message(make_record(value), ctx(redaction=rules), INGEST_MS)
    stored = json.loads(row["payload"])
    assert stored["payment"]["card"] == {"number": "[REDACTED]", "holder": "A"}
    assert stored["items"] == [{"secret": "***"}, {"secret": "***", "n": 1}]
    assert stored["note"] == "paid with [CARD] today"
    assert "4111" not in row["payload"]
    # the hash is of what was received, so the original can be proven without storing it
    assert row["payload_sha256"] == hashlib.sha256(value).hexdigest()


def test_redaction_patterns_apply_to_non_json_and_only_to_matching_topics():
    rules = [RedactionRule(pattern=r"\d{16}", topic="pay.*")]
    row = decode_message(
        make_record(b"card 4111111111111111", topic="payments"), ctx(redaction=rules), INGEST_MS
    )
    assert row["payload"] == "card [REDACTED]"
    other = decode_message(
        make_record(b"card 4111111111111111", topic="orders"), ctx(redaction=rules), INGEST_MS
    )
    assert other["payload"] == "card 4111111111111111"


def test_lone_surrogates_from_json_escapes_are_made_storable():
    rules = [RedactionRule(path="/secret")]
    row = decode_message(
        make_record(b'{"secret": "x", "name": "\\ud800"}', topic="t"),
        ctx(redaction=rules),
        INGEST_MS,
    )
    row["payload"].encode("utf-8")  # would raise on a lone surrogate


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([CorrelationRule(topic="(")], "collector.correlation[0].topic"),
        ([CorrelationRule(topic="t", saga_id="no-slash")], "collector.correlation[0].saga_id"),
        ([CorrelationRule(topic="t", type="re:(")], "collector.correlation[0].type"),
        ([CorrelationRule(topic="")], "collector.correlation[0].topic"),
    ],
)
def test_bad_correlation_rules_fail_at_start_naming_the_setting(rules, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Correlator(rules)


def test_bad_redaction_rules_fail_at_start():
    with pytest.raises(RuleError, match=r"collector.redaction\[0\]"):
        Redactor([RedactionRule(path="/a", pattern="b")])
    with pytest.raises(RuleError, match=r"collector.redaction\[0\].pattern"):
        Redactor([RedactionRule(pattern="(")])


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("2025-11-22T10:15:30.123Z", 1763806530123),
        ("1763806530", 1763806530000),
        ("1763806530123", 1763806530123),
        ("1763806530123000", 1763806530123),
    ],
)
def test_event_times_in_rfc3339_or_epoch_units(text, expected_ms):
    moment = parse_event_time(text)
    assert moment is not None
    assert round(moment.timestamp() * 1000) == expected_ms


def test_span_records_become_span_rows():
    span = {
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "b7ad6b7169203331",
        "parent_span_id": "",
        "name": "payment process",
        "kind": "CONSUMER",
        "service": "payment",
        "start_time_unix_nano": 1_763_806_530_123_456_789,
        "end_time_unix_nano": 1_763_806_530_223_456_789,
        "status_code": "ERROR",
        "status_message": "boom",
        "saga_id": "order-1",
        "saga_type": "order",
        "message_id": "m1",
        "attributes": {"retry": 2},
        "links": [{"trace_id": "a" * 32, "span_id": "b" * 16}],
        "events": [{"name": "exception", "time_unix_nano": 1, "attributes": {}}],
    }
    record = make_record(json.dumps(span).encode(), topic="_sagascope.spans", offset=5)
    row = decode_span(record, ctx(), INGEST_MS)
    assert row["start_time"] == "1763806530.123456"
    assert row["attributes"] == {"retry": "2"}
    assert row["links"] == [{"trace_id": "a" * 32, "span_id": "b" * 16}]
    assert row["parse_error"] == "" and row["payload"] == ""
    assert (row["topic"], row["offset"]) == ("_sagascope.spans", 5)


def test_a_telemetry_record_that_is_not_a_span_is_kept_with_its_error():
    row = decode_span(make_record(b"\x00garbage", topic="_sagascope.spans"), ctx(), INGEST_MS)
    assert "not valid JSON" in row["parse_error"]
    assert row["payload"] == "\x00garbage"


@pytest.mark.parametrize("when", [b"1969-07-20T20:17:40.000Z", b"2300-01-01T00:00:00.000Z"])
def test_an_event_time_outside_the_storable_range_keeps_its_header(when):
    """The Kafka time is stored instead, and the header stays as received (not elided)."""
    row = decode_message(make_record(b"{}", headers=[("ce_time", when)]), ctx(), INGEST_MS)
    assert row["event_time"] == row["kafka_time"]
    assert row["headers"] == {"ce_time": when.decode()}
