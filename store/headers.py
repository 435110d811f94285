"""Contract headers stored once: in their columns, not again in ``headers``.

A contract header whose value a column reproduces exactly (``ce_id`` is ``message_id``,
``traceparent`` is ``00-<trace_id>-<span_id>-01``, ``ce_time`` is ``event_time`` in the
contract's millisecond format, ...) is left out of the stored ``headers`` map and marked by one
bit in ``headers_elided``; :func:`rebuild` puts it back on read. Anything a column does not
reproduce exactly (another value, another time format, trace flags other than ``01``) stays in
``headers`` as received, so the rebuilt map always equals the received one. The bits are part
of the audited row (see ``sagascope.store.audit.row_digest``). Header order is not kept, as it never was: a
repeated header keeps its last value.

The bit of a header is its index in :data:`ELIDABLE`: append only, never reorder.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

from sagascope.instrumentation.contract import (
    CE_CAUSATIONID,
    CE_COMPENSATES,
    CE_CORRELATIONID,
    CE_ID,
    CE_KIND,
    CE_SAGAID,
    CE_SAGASTATUS,
    CE_SAGATYPE,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_STEP,
    CE_TIME,
    CE_TYPE,
    SPECVERSION,
    TRACEPARENT,
)
from sagascope.store.timetext import epoch_ms, rfc3339_ms

#: (header, column it is rebuilt from); ``traceparent`` uses trace_id and span_id, ``ce_time``
#: event_time, ``ce_specversion`` the constant 1.0. Index = bit in ``headers_elided``.
ELIDABLE: tuple[tuple[str, str], ...] = (
    (TRACEPARENT, "trace_id"),
    (CE_SPECVERSION, ""),
    (CE_ID, "message_id"),
    (CE_SOURCE, "source"),
    (CE_TYPE, "type"),
    (CE_TIME, "event_time"),
    (CE_SAGAID, "saga_id"),
    (CE_SAGATYPE, "saga_type"),
    (CE_KIND, "kind"),
    (CE_CAUSATIONID, "causation_id"),
    (CE_STEP, "step"),
    (CE_SAGASTATUS, "saga_status"),
    (CE_COMPENSATES, "compensates"),
    (CE_CORRELATIONID, "saga_id"),  # the CloudEvents name the instrumentation also writes
)
BIT: dict[str, int] = {header: i for i, (header, _) in enumerate(ELIDABLE)}
#: Plain headers: the column holds the header value as is.
_PLAIN = tuple(
    (header, column, 1 << i) for i, (header, column) in enumerate(ELIDABLE)
    if header not in (TRACEPARENT, CE_SPECVERSION, CE_TIME)
)
#: Headers a column reproduces in another format (the order :func:`elide` compares them in).
_SPECIAL = (TRACEPARENT, CE_TIME, CE_SPECVERSION)
_COLUMN: dict[str, str] = dict(ELIDABLE)
_TIME_BIT = 1 << BIT[CE_TIME]


def traceparent_text(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


def _column_text(header: str, row: Mapping[str, Any], event_ms: int) -> Any:
    """The value the columns of ``row`` give contract header ``header`` (None: they give none).

    The one definition both :func:`elide` (is the header reproduced?) and :func:`rebuild` use.
    """
    if header == TRACEPARENT:
        trace_id = row["trace_id"]
        return traceparent_text(trace_id, row["span_id"]) if trace_id else None
    if header == CE_TIME:
        return rfc3339_ms(event_ms)
    if header == CE_SPECVERSION:
        return SPECVERSION
    return row[_COLUMN[header]]


def elide(headers: dict[str, str], row: Mapping[str, Any], event_ms: int) -> tuple[dict[str, str], int]:
    """(headers a column does not reproduce, bits of those it does) for a row being stored.

    ``row`` holds the decoded columns; ``event_ms`` is the row's event time in epoch ms.
    """
    if not headers:
        return headers, 0
    # A producer sends the same header names in the same order on every message: the plan
    # (which headers to compare with which columns) is made once per name sequence.
    names = tuple(headers)
    plan = _plans.get(names)
    if plan is None:
        if len(_plans) > 1024:
            _plans.clear()
        plan = _plans[names] = _Plan(names)
    bits = 0
    rest: dict[str, str] | None = None
    checks = plan.special
    if plan.plain_bits:
        if plan.header_values(headers) == plan.column_values(row):
            bits = plan.plain_bits
        else:  # a rule filled a column whose header was empty: compare one by one
            checks = plan.plain + plan.special
    for header, bit in checks:
        value = headers[header]
        if value == _column_text(header, row, event_ms):
            bits |= bit
        else:
            rest = rest or {}
            rest[header] = value
    if plan.others:
        rest = rest or {}
        for header in plan.others:
            rest[header] = headers[header]
    return (rest if rest is not None else {}), bits


class _Plan:
    """How to elide the headers of messages carrying exactly these header names."""

    def __init__(self, names: tuple[str, ...]) -> None:
        plain = [(header, column, bit) for header, column, bit in _PLAIN if header in names]
        #: (header, bit) of the plain headers present, compared all at once first
        self.plain = tuple((header, bit) for header, _, bit in plain)
        self.plain_bits = 0
        for _, bit in self.plain:
            self.plain_bits |= bit
        self.header_values = _getter(*(header for header, _, _ in plain))
        self.column_values = _getter(*(column for _, column, _ in plain))
        #: (header, bit) of the headers rebuilt from a column's value in the contract's format
        self.special = tuple((header, 1 << BIT[header]) for header in _SPECIAL if header in names)
        self.others = tuple(name for name in names if name not in BIT)


def _getter(*keys: str) -> Any:
    """A function of a mapping giving the tuple of its values at ``keys``."""
    if len(keys) == 1:
        single = operator.itemgetter(keys[0])
        return lambda mapping: (single(mapping),)
    return operator.itemgetter(*keys) if keys else (lambda mapping: ())


_plans: dict[tuple[str, ...], _Plan] = {}


def rebuild(row: Mapping[str, Any]) -> dict[str, str]:
    """The headers as received, from a stored row (``headers``, ``headers_elided`` and the
    columns the set bits name; ``event_time`` as read back, a datetime, or epoch ms)."""
    stored = dict(row.get("headers") or {})
    bits = int(row.get("headers_elided") or 0)
    if not bits:
        return stored
    event_ms = epoch_ms(row["event_time"]) if bits & _TIME_BIT else 0
    out: dict[str, str] = {}
    for i, (header, _) in enumerate(ELIDABLE):
        if bits >> i & 1:
            out[header] = str(_column_text(header, row, event_ms))
    out.update(stored)
    return out


#: Columns :func:`rebuild` may need besides ``headers`` and ``headers_elided``.
REBUILD_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(["span_id", *(column for _, column in ELIDABLE if column)])
)


def header_sql(key: str) -> str:
    """SQL for the value of header ``key`` of a ``messages`` row, elided or not.

    ``key`` picks among fixed expressions here and is never part of the SQL: callers pass the
    key itself as the parameter ``{header_key:String}`` (used for non-contract headers).
    """
    i = BIT.get(key)
    if i is None:
        return "headers[{header_key:String}]"
    value = value_sql(key)
    return f"if(bitTest(headers_elided, {i}), {value}, headers[{{header_key:String}}])"


def value_sql(header: str) -> str:
    """SQL of the value the column(s) reproduce for elidable ``header`` (as :func:`rebuild` does)."""
    column = ELIDABLE[BIT[header]][1]
    if header == TRACEPARENT:
        return "concat('00-', trace_id, '-', span_id, '-01')"
    if header == CE_SPECVERSION:
        return f"'{SPECVERSION}'"
    if header == CE_TIME:
        # rfc3339_ms in SQL (the same text as header_sql's).
        return (
            "formatDateTime(event_time, '%Y-%m-%dT%H:%i:%S.') || "
            "leftPad(toString(toUnixTimestamp64Milli(event_time) % 1000), 3, '0') || 'Z'"
        )
    return f"toString({column})"


def rebuild_sql() -> str:
    """SQL of a ``messages`` row's headers as received, a ``Map(String, String)``: what
    :func:`rebuild` returns, for queries over many rows (e.g. sizes of the received records).

    Fixed text: no parameters.
    """
    names = ", ".join(f"'{header}'" for header, _ in ELIDABLE)
    entries = ", ".join(f"'{header}', {value_sql(header)}" for header, _ in ELIDABLE)
    return (
        "mapConcat(mapFilter((k, v) -> bitTest(headers_elided, indexOf(["
        + names
        + "], k) - 1), map("
        + entries
        + ")), CAST(headers, 'Map(String, String)'))"
    )
