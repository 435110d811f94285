"""Contract headers stored once: elided when a column reproduces them, rebuilt exactly on read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sagascope.instrumentation.contract import format_time
from sagascope.store.headers import (
    BIT,
    ELIDABLE,
    REBUILD_COLUMNS,
    elide,
    header_sql,
    rebuild,
    rebuild_sql,
)
from sagascope.store.timetext import rfc3339_ms

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
EVENT = datetime(2026, 11, 22, 10, 15, 30, 123000, tzinfo=UTC)
EVENT_MS = 1_795_342_530_123


def _received(**overrides: str) -> dict[str, str]:
    """Every contract header, as the instrumentation sends them, plus ``overrides``."""
    headers = {
        "traceparent": f"00-{TRACE}-{SPAN}-01",
        "ce_specversion": "1.0",
        "ce_id": "m-2",
        "ce_source": "payment",
        "ce_type": "RefundPayment",
        "ce_time": "2026-11-22T10:15:30.123Z",
        "ce_sagaid": "order-123",
        "ce_sagatype": "order-fulfillment",
        "ce_kind": "command",
        "ce_causationid": "m-1",
        "ce_step": "refund",
        "ce_sagastatus": "compensating",
        "ce_compensates": "payment",
        "ce_correlationid": "order-123",
    }
    headers.update(overrides)
    return headers


def _columns(**overrides: Any) -> dict[str, Any]:
    """The decoded columns of the message :func:`_received` describes."""
    row: dict[str, Any] = {
        "trace_id": TRACE, "span_id": SPAN, "message_id": "m-2", "source": "payment",
        "type": "RefundPayment", "event_time": EVENT, "saga_id": "order-123",
        "saga_type": "order-fulfillment", "kind": "command", "causation_id": "m-1",
        "step": "refund", "saga_status": "compensating", "compensates": "payment",
    }
    row.update(overrides)
    return row


def _stored(received: dict[str, str], columns: dict[str, Any], event_ms: int = EVENT_MS) -> dict[str, Any]:
    row = dict(columns)
    row["headers"], row["headers_elided"] = elide(dict(received), columns, event_ms)
    return row


def test_rfc3339_ms_is_the_contract_format():
    assert (EVENT - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1) == EVENT_MS
    assert rfc3339_ms(EVENT_MS) == "2026-11-22T10:15:30.123Z"
    assert rfc3339_ms(EVENT_MS - 118) == "2026-11-22T10:15:30.005Z"
    assert rfc3339_ms(0) == "1970-01-01T00:00:00.000Z"
    for ms in (EVENT_MS, EVENT_MS - 118, 0, 1_700_000_000_999):
        assert rfc3339_ms(ms) == format_time(ms / 1000)


def test_every_contract_header_is_elided_and_rebuilt_exactly():
    received = _received()
    row = _stored(received, _columns())
    assert row["headers"] == {}
    assert row["headers_elided"] == (1 << len(ELIDABLE)) - 1
    assert rebuild(row) == received
    assert set(REBUILD_COLUMNS) <= set(_columns())


def test_elide_leaves_the_received_map_alone():
    received = _received(tenant="acme")
    copy = dict(received)
    elide(received, _columns(), EVENT_MS)
    assert received == copy


def test_absent_headers_set_no_bit_and_stay_absent():
    received = _received()
    for name in ("ce_causationid", "ce_step", "ce_sagastatus", "ce_compensates"):
        del received[name]
    columns = _columns(causation_id="", step="", saga_status="", compensates="")
    row = _stored(received, columns)
    assert row["headers"] == {}
    for name in ("ce_causationid", "ce_step", "ce_sagastatus", "ce_compensates"):
        assert not row["headers_elided"] >> BIT[name] & 1
    assert rebuild(row) == received


def test_an_empty_header_matching_an_empty_column_round_trips():
    received = _received(ce_step="")
    row = _stored(received, _columns(step=""))
    assert rebuild(row) == received


@pytest.mark.parametrize(
    "name, value",
    [
        ("ce_time", "2026-11-22T10:15:30.123+00:00"),  # RFC 3339, another spelling
        ("ce_time", "2026-11-22T10:15:30.123456Z"),
        ("ce_time", "2026-11-22T11:15:30.123+01:00"),
        ("traceparent", f"00-{TRACE}-{SPAN}-00"),  # not sampled
        ("traceparent", f"01-{TRACE}-{SPAN}-01-extra"),
        ("ce_specversion", "0.3"),
        ("ce_specversion", " 1.0"),
        ("ce_id", "m-other"),  # a column filled from elsewhere (a correlation rule)
        ("ce_sagaid", "ORDER-123"),
    ],
)
def test_a_header_its_column_does_not_reproduce_stays_stored(name, value):
    received = _received(**{name: value})
    row = _stored(received, _columns())
    assert row["headers"] == {name: value}
    assert not row["headers_elided"] >> BIT[name] & 1
    assert rebuild(row) == received


def test_traceparent_stays_when_the_row_has_no_trace_id():
    received = _received()
    row = _stored(received, _columns(trace_id="", span_id=""))
    assert row["headers"] == {"traceparent": received["traceparent"]}
    assert rebuild(row) == received


def test_non_contract_headers_stay_stored():
    received = _received(tenant="acme", tracestate="congo=t61rcWkgMzE", error="card declined")
    row = _stored(received, _columns())
    assert row["headers"] == {"tenant": "acme", "tracestate": "congo=t61rcWkgMzE", "error": "card declined"}
    assert rebuild(row) == received


def test_no_headers_at_all():
    row = _stored({}, _columns())
    assert (row["headers"], row["headers_elided"]) == ({}, 0)
    assert rebuild(row) == {}
    assert rebuild({"headers": {"x": "1"}, "headers_elided": 0}) == {"x": "1"}


@pytest.mark.parametrize(
    "event_time",
    [EVENT, EVENT.replace(tzinfo=None), EVENT_MS],
    ids=["aware", "naive-utc", "epoch-ms"],
)
def test_event_time_is_read_back_as_datetime_or_epoch_ms(event_time):
    received = _received()
    row = _stored(received, _columns())
    row["event_time"] = event_time
    assert rebuild(row)["ce_time"] == "2026-11-22T10:15:30.123Z"


# ---- on chDB: what the store reads back, and header_sql against rebuild ---------------------

_ROW_DEFAULTS: dict[str, Any] = {
    "topic": "payments", "partition": 0, "kafka_time": EVENT, "ingest_time": EVENT,
    "kafka_key": "order-123", "payload": "{}", "payload_size": 2,
    "payload_sha256": "0" * 64, "payload_truncated": False, "correlation": "headers",
    "parse_error": "",
}


def _cases() -> list[tuple[dict[str, str], dict[str, Any], int]]:
    """(received headers, columns, event ms), one row each, covering every rule."""
    absent = _received()
    for name in ("ce_causationid", "ce_sagastatus", "ce_compensates"):
        del absent[name]
    early = EVENT.replace(microsecond=7000)
    whole = EVENT.replace(microsecond=0)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [
        (_received(), _columns(), EVENT_MS),
        (absent, _columns(causation_id="", saga_status="", compensates=""), EVENT_MS),
        (_received(ce_time=rfc3339_ms(EVENT_MS - 116)), _columns(event_time=early), EVENT_MS - 116),
        (_received(ce_time=rfc3339_ms(EVENT_MS - 123)), _columns(event_time=whole), EVENT_MS - 123),
        (_received(ce_time="2026-11-22T10:15:30.123+00:00"), _columns(), EVENT_MS),
        (_received(traceparent=f"00-{TRACE}-{SPAN}-00"), _columns(), EVENT_MS),
        (_received(ce_specversion="0.3", tenant="acme"), _columns(), EVENT_MS),
        (_received(ce_step="refund-2"), _columns(), EVENT_MS),
        ({"tenant": "acme"}, _columns(trace_id="", span_id="", message_id=""),
         (whole - epoch) // timedelta(milliseconds=1)),
    ]


def test_header_sql_on_chdb_matches_rebuild(store):
    rows = []
    for offset, (received, columns, event_ms) in enumerate(_cases()):
        row = {**_ROW_DEFAULTS, **_stored(received, columns, event_ms), "offset": offset}
        rows.append(row)
    store.insert("messages", rows)
    keys = [header for header, _ in ELIDABLE] + ["tenant", "tracestate"]
    stored = store.query(
        "SELECT offset, headers, headers_elided, " + ", ".join(REBUILD_COLUMNS)
        + " FROM messages ORDER BY offset"
    ).dicts()
    assert len(stored) == len(rows)
    for back, (received, _, _) in zip(stored, _cases(), strict=True):
        assert isinstance(back["event_time"], datetime)
        # What the store reads back (event_time a datetime) rebuilds the received headers.
        assert rebuild(back) == received
    for key in keys:
        values = store.query(
            f"SELECT offset, {header_sql(key)} AS v FROM messages ORDER BY offset",
            {"header_key": key},
        ).rows
        expected = [(offset, received.get(key, "")) for offset, (received, _, _) in enumerate(_cases())]
        assert [(int(o), v) for o, v in values] == expected, key


def test_rebuild_sql_on_chdb_is_the_received_map(store):
    rows = [
        {**_ROW_DEFAULTS, **_stored(received, columns, event_ms), "offset": offset}
        for offset, (received, columns, event_ms) in enumerate(_cases())
    ]
    store.insert("messages", rows)
    back = store.query(f"SELECT offset, {rebuild_sql()} AS h FROM messages ORDER BY offset").rows
    assert [dict(h) for _, h in back] == [received for received, _, _ in _cases()]


def test_header_sql_never_puts_the_key_in_the_sql(store):
    evil = "x'] OR 1=1 --"
    assert evil not in header_sql(evil)
    assert store.query(
        f"SELECT count() FROM messages WHERE {header_sql(evil)} != ''", {"header_key": evil}
    ).scalar() == 0
