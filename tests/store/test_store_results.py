"""Query results read as the Python value of each column type (``store.results``)."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo


def _row(store, select: str) -> tuple:
    return store.query(f"SELECT {select}").rows[0]


def test_the_schemas_column_types_read_as_python_values(store):
    row = _row(
        store,
        "toDateTime64('2026-12-07 12:00:00.123', 3, 'UTC'), toUInt64(18446744073709551615),"
        " toInt64(-5), toLowCardinality('Paid'), ['a', 'b'], map('ce_type', 'X'), true,"
        " CAST(NULL AS Nullable(String)), [toFloat64(1), 2.5], toDate('2026-12-07')",
    )
    assert row == (
        datetime(2026, 12, 7, 12, 0, 0, 123000, tzinfo=ZoneInfo("UTC")),
        18446744073709551615,
        -5,
        "Paid",
        ["a", "b"],
        {"ce_type": "X"},
        True,
        None,
        [1.0, 2.5],
        date(2026, 12, 7),
    )


def test_a_datetime64_without_a_zone_reads_as_an_aware_instant(store):
    moment, epoch_seconds = _row(
        store, "toDateTime64('2026-12-07 12:00:00.5', 3, 'UTC')::DateTime64(3),"
        " toDateTime('2026-12-07 12:00:00', 'UTC')",
    )
    assert moment == datetime(2026, 12, 7, 12, 0, 0, 500000, tzinfo=UTC)
    assert epoch_seconds == 1796644800  # a DateTime: its epoch seconds, as the Arrow output gave


def test_tuples_read_as_dicts_by_element_name_or_position(store):
    row = _row(
        store,
        "tuple('a', toDateTime64('2026-01-01 00:00:00', 3, 'UTC')),"
        " CAST(('x', [1, 2]) AS Tuple(name String, counts Array(UInt64))),"
        " [tuple('b', 2)]",
    )
    assert row == (
        {"1": "a", "2": datetime(2026, 1, 1, tzinfo=UTC)},
        {"name": "x", "counts": [1, 2]},
        [{"1": "b", "2": 2}],
    )


def test_aggregate_state_columns_read_as_their_values(store):
    row = _row(
        store,
        "CAST(8 AS SimpleAggregateFunction(sum, UInt64)),"
        " CAST((toDateTime64('2026-01-01 00:00:00', 3, 'UTC'), 1)"
        " AS SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), UInt8))),"
        " toIntervalSecond(5)",
    )
    assert row == (8, {"1": datetime(2026, 1, 1, tzinfo=UTC), "2": 1}, 5)


def test_float_columns_read_as_floats_even_whole_or_not_finite(store):
    whole, not_a_number, infinite, narrow = _row(store, "toFloat64(1), nan, -inf, toFloat32(0.1)")
    assert type(whole) is float and whole == 1.0
    assert math.isnan(not_a_number) and infinite == -math.inf
    assert narrow == 0.10000000149011612  # the float32 the column holds


def test_wide_integers_and_decimals_read_exactly(store):
    row = _row(
        store,
        "toInt128('170141183460469231731687303715884105727'), toDecimal64(1.5, 2),"
        " map(toUInt16(7), 'seven'), toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0')",
    )
    assert row == (
        170141183460469231731687303715884105727,
        Decimal("1.50"),
        {7: "seven"},
        uuid.UUID("61f0c404-5cb3-11e7-907b-a6006ad3dba0"),
    )


def test_invalid_utf8_reads_with_replacement_characters(store):
    (text,) = _row(store, "concat('ok', unhex('FF'))")
    assert text.startswith("ok") and "\ufffd" in text


def test_an_empty_result_keeps_its_column_names(store):
    result = store.query("SELECT number AS n, toString(number) AS s FROM numbers(0)")
    assert result.column_names == ("n", "s") and result.rows == []
