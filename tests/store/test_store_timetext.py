"""Times as text and back (``sagascope.store.timetext``): each format, and what ClickHouse reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from sagascope.instrumentation.contract import format_time, parse_time
from sagascope.store import StoreError
from sagascope.store.timetext import (
    as_utc,
    clickhouse_literal,
    clickhouse_ms,
    clickhouse_param,
    clickhouse_us,
    epoch_ms,
    rfc3339_ms,
    stored_ms,
)

MOMENT = datetime(2026, 11, 22, 10, 15, 30, 123456, tzinfo=UTC)
MOMENT_MS = 1_795_342_530_123


def test_each_format_writes_the_text_its_name_says() -> None:
    assert clickhouse_ms(MOMENT_MS) == "1795342530.123"
    assert clickhouse_us(MOMENT_MS * 1_000_000 + 456_789) == "1795342530.123456"
    assert clickhouse_param(MOMENT) == "2026-11-22 10:15:30.123"
    assert clickhouse_literal(MOMENT) == "2026-11-22 10:15:30.123456"
    assert clickhouse_literal(MOMENT.replace(microsecond=0)) == "2026-11-22 10:15:30"
    assert rfc3339_ms(MOMENT_MS) == "2026-11-22T10:15:30.123Z"
    assert stored_ms(MOMENT) == clickhouse_ms(MOMENT_MS)


def test_short_epoch_numbers_are_spelled_out_for_clickhouse() -> None:
    assert clickhouse_ms(5) == "1970-01-01 00:00:00.005"
    assert clickhouse_ms(-1) == "1970-01-01 00:00:00.000"
    assert clickhouse_us(None) == "1970-01-01 00:00:00.000000"


def test_rfc3339_ms_is_the_wire_format_and_parses_back() -> None:
    for ms in (0, 999, MOMENT_MS, MOMENT_MS + 877):
        text = rfc3339_ms(ms)
        assert text == format_time(ms / 1000)
        assert epoch_ms(parse_time(text)) == ms


def test_epoch_ms_is_exact_and_reads_naive_times_as_utc() -> None:
    assert epoch_ms(MOMENT) == MOMENT_MS
    assert epoch_ms(MOMENT.replace(tzinfo=None)) == MOMENT_MS
    assert epoch_ms(MOMENT.astimezone(timezone(timedelta(hours=-5)))) == MOMENT_MS
    assert epoch_ms(datetime(2026, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC)) % 1000 == 999
    assert epoch_ms(MOMENT_MS) == MOMENT_MS


def test_as_utc_gives_aware_utc_times_and_refuses_anything_else() -> None:
    assert as_utc(MOMENT.replace(tzinfo=None)) == MOMENT
    shifted = as_utc(MOMENT.astimezone(timezone(timedelta(hours=2))))
    assert shifted.tzinfo is UTC and shifted == MOMENT
    with pytest.raises(StoreError, match="expected a time"):
        as_utc("2026-11-22")


def test_clickhouse_reads_each_format_back_as_the_same_time(store) -> None:
    store.command("CREATE TABLE times (ms DateTime64(3, 'UTC'), us DateTime64(6, 'UTC')) "
                  "ENGINE = MergeTree ORDER BY ms")
    store.insert("times", [{"ms": clickhouse_ms(MOMENT_MS),
                            "us": clickhouse_us(MOMENT_MS * 1_000_000 + 456_000)}])
    row = store.query("SELECT ms, us FROM times").dicts()[0]
    assert epoch_ms(row["ms"]) == MOMENT_MS and stored_ms(row["ms"]) == clickhouse_ms(MOMENT_MS)
    assert row["us"] == MOMENT
    by_param = store.query("SELECT count() FROM times WHERE ms = {t:DateTime64(3, 'UTC')}",
                           {"t": clickhouse_param(MOMENT)}).scalar()
    assert by_param == 1
