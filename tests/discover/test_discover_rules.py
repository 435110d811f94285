"""Correlation rules that say what a system means: sources beyond the payload, types and
outcomes per topic, compensations, and start-up errors that name the setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from sagascope.collector.decode.correlate import Correlator, RuleError
from sagascope.collector.decode.redact import Redactor
from sagascope.collector.decode.rows import DecodeContext, decode_message
from sagascope.settings import CorrelationRule, OutcomeValue, TypeMeaning, load_settings
from sagascope.store.timetext import clickhouse_ms

INGEST_MS = 1_763_800_001_000


def record(value: object, *, topic: str = "payments", key: str | None = None,
           headers: dict[str, str] | None = None) -> ConsumerRecord:
    raw = json.dumps(value).encode() if value is not None else None
    encoded_key = key.encode() if key is not None else None
    header_list = [(k, v.encode()) for k, v in (headers or {}).items()]
    return ConsumerRecord(topic, 0, -1, 7, 1_763_800_000_123, 0, encoded_key, raw, header_list,
                          None, len(encoded_key or b""), len(raw or b""), -1)


def decode(rule: CorrelationRule, rec: ConsumerRecord) -> dict[str, object]:
    return decode_message(rec, DecodeContext(Correlator([rule]), Redactor(()), 65536), INGEST_MS)


def test_saga_id_from_a_header():
    rule = CorrelationRule(topic="payments", saga_id="header:x-correlation-id", key_fallback=False)
    row = decode(rule, record({"amount": 3}, headers={"x-correlation-id": "o-1"}))
    assert (row["saga_id"], row["correlation"]) == ("o-1", "rule:payments")


def test_saga_id_from_the_key_when_asked_for():
    rule = CorrelationRule(topic="payments", saga_id="key", key_fallback=False)
    assert decode(rule, record({"amount": 3}, key="o-2"))["saga_id"] == "o-2"


def test_type_from_the_topic_and_as_a_constant():
    by_topic = CorrelationRule(topic="shipping\\..*", saga_id="/orderId", type="topic")
    row = decode(by_topic, record({"orderId": "o-3"}, topic="shipping.notifications"))
    assert row["type"] == "shipping.notifications"
    constant = CorrelationRule(topic="shipping\\..*", saga_id="/orderId", type_value="Notified")
    row = decode(constant, record({"orderId": "o-3"}, topic="shipping.notifications"))
    assert row["type"] == "Notified"


def test_event_time_and_type_from_headers():
    rule = CorrelationRule(topic="payments", saga_id="/id", type="header:__TypeId__",
                           event_time="header:ts")
    row = decode(rule, record({"id": "o-4"}, headers={"__TypeId__": "PaymentDone",
                                                       "ts": "1763800000456"}))
    assert row["type"] == "PaymentDone"
    assert row["event_time"] == clickhouse_ms(1763800000456)


def test_an_outcome_inside_the_payload_marks_the_saga_status():
    rule = CorrelationRule(
        topic="payments", saga_id="/id", type="/type", outcome="/success",
        outcomes=(OutcomeValue("false", "failed"),),
    )
    failed = decode(rule, record({"id": "o-5", "type": "PaymentReply", "success": False}))
    ok = decode(rule, record({"id": "o-5", "type": "PaymentReply", "success": True}))
    assert (failed["saga_status"], ok["saga_status"]) == ("failed", "")


def test_outcome_header_as_eventuate_sends_it():
    rule = CorrelationRule(
        topic="payments", saga_id="header:command_saga_id", outcome="header:reply_outcome-type",
        outcomes=(OutcomeValue("FAILURE", "failed"),),
    )
    row = decode(rule, record({}, headers={"command_saga_id": "s-1",
                                           "reply_outcome-type": "FAILURE"}))
    assert (row["saga_id"], row["saga_status"]) == ("s-1", "failed")


def test_types_give_kind_step_status_and_compensation_per_topic():
    types = (
        TypeMeaning("RefundPayment", kind="command", compensates="ProcessPayment",
                    status="compensating"),
        TypeMeaning("Declined", step="ProcessPayment", status="failed"),
    )
    payments = CorrelationRule(topic="payments", saga_id="/id", type="/type", types=types)
    stock = CorrelationRule(topic="stock", saga_id="/id", type="/type")
    ctx = DecodeContext(Correlator([payments, stock]), Redactor(()), 65536)
    refund = decode_message(record({"id": "o", "type": "RefundPayment"}), ctx, INGEST_MS)
    assert (refund["kind"], refund["compensates"], refund["saga_status"]) == (
        "command", "ProcessPayment", "compensating")
    declined = decode_message(record({"id": "o", "type": "Declined"}), ctx, INGEST_MS)
    assert (declined["step"], declined["saga_status"]) == ("ProcessPayment", "failed")
    # the same word on another topic means nothing: status rules are per topic
    other = decode_message(record({"id": "o", "type": "Declined"}, topic="stock"), ctx, INGEST_MS)
    assert (other["step"], other["saga_status"]) == ("", "")


def test_compensates_from_a_field():
    rule = CorrelationRule(topic="payments", saga_id="/id", compensates="/undoes")
    assert decode(rule, record({"id": "o", "undoes": "ChargeCard"}))["compensates"] == "ChargeCard"


def test_contract_headers_win_over_what_a_rule_says():
    rule = CorrelationRule(topic="payments", saga_id="/id", type="/type",
                           types=(TypeMeaning("Declined", status="failed"),))
    row = decode(rule, record({"id": "o", "type": "Declined"},
                              headers={"ce_sagastatus": "compensating"}))
    assert row["saga_status"] == "compensating"


@pytest.mark.parametrize(("rule", "setting"), [
    (CorrelationRule(topic="t", saga_id="orderId"), r"collector.correlation\[0\].saga_id"),
    (CorrelationRule(topic="t", type="header:"), r"collector.correlation\[0\].type"),
    (CorrelationRule(topic="t", outcome="/ok"), r"collector.correlation\[0\].outcome needs"),
    (CorrelationRule(topic="t", outcome="/ok", outcomes=(OutcomeValue("false", "broken"),)),
     r"collector.correlation\[0\].outcomes\[0\].status must be one of"),
    (CorrelationRule(topic="t", types=(TypeMeaning("X", kind="query"),)),
     r"collector.correlation\[0\].types\[0\].kind"),
    (CorrelationRule(topic="t", types=(TypeMeaning("X"), TypeMeaning("X"))),
     r"collector.correlation\[0\].types\[1\].type 'X' is described twice"),
])
def test_invalid_rules_fail_at_start_up_naming_the_setting(rule, setting):
    with pytest.raises(RuleError, match=setting):
        Correlator([rule])


def test_rules_with_types_and_outcomes_load_from_the_file(tmp_path: Path):
    config = tmp_path / "sagascope.toml"
    config.write_text('''
[[collector.correlation]]
topic = "payments"
saga_id = "header:x-correlation-id"
outcome = "/status"
outcomes = [{ value = "FAILED", status = "failed" }]
types = [
  { type = "RefundPayment", kind = "command", compensates = "ProcessPayment" },
]
''')
    rule = load_settings(config, environ={}).collector.correlation[0]
    assert rule.outcomes == (OutcomeValue("FAILED", "failed"),)
    assert rule.types == (TypeMeaning("RefundPayment", kind="command", compensates="ProcessPayment"),)
    Correlator([rule])


def test_collect_stops_at_start_on_a_bad_rule_naming_it(
    bootstrap_servers: str, chdb_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from sagascope.cli import main

    config = tmp_path / "sagascope.toml"
    config.write_text('''
[[collector.correlation]]
topic = "payments"
saga_id = "header:x-correlation-id"
types = [{ type = "Declined", status = "broken" }]
''')
    code = main(["collect", "--config", str(config), "--bootstrap-servers", bootstrap_servers,
                 "--store-path", chdb_path, "--database", "discover_bad_rule"])
    assert code == 2
    assert "collector.correlation[0].types[0].status must be one of" in capsys.readouterr().err
