"""One alert, one time text: every sink writes its times as the contract's RFC 3339 milliseconds."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sagascope.alerter import LogSink
from sagascope.alerter.alertmanager import alertmanager_payload
from sagascope.instrumentation.contract import parse_time

# Microseconds past the millisecond: every sink floors them, none rounds.
SINCE = datetime(2026, 11, 22, 10, 15, 30, 123_999, tzinfo=UTC)
TEXT = "2026-11-22T10:15:30.123Z"


def test_the_log_webhook_kafka_and_alertmanager_sinks_write_the_same_time_text(
    make_alert, caplog
) -> None:
    alert = make_alert("order-7", since=SINCE, opened_at=SINCE)
    with caplog.at_level(logging.WARNING, logger="sagascope.alerter.sinks"):
        LogSink().send(alert)
    assert f"since={TEXT} " in caplog.text
    # The webhook and Kafka sinks send to_json().
    assert alert.to_json()["since"] == alert.to_json()["opened_at"] == TEXT
    payload = alertmanager_payload(alert, severity="warning", valid_for_s=60.0, now=SINCE)
    assert payload["startsAt"] == TEXT
    assert payload["endsAt"] == "2026-11-22T10:16:30.123Z"
    assert parse_time(TEXT) == SINCE.replace(microsecond=123_000)
