"""Times as text and back: every text form a time takes between the wire and the store.

Each function is named for the format it writes:

========================  ==========================================  ============================
function                  text                                        used for
========================  ==========================================  ============================
:func:`clickhouse_ms`     ``1732270530.123`` (``seconds.mmm``)        inserting a DateTime64(3)
:func:`clickhouse_us`     ``1732270530.123456`` (``seconds.micros``)  inserting a DateTime64(6)
:func:`stored_ms`         :func:`clickhouse_ms` of a read-back time   the audit row digest
:func:`clickhouse_param`  ``2026-11-22 10:15:30.123``                 a DateTime64(3) parameter
:func:`clickhouse_literal` ``2026-11-22 10:15:30.123456``             a chDB parameter or literal
:func:`rfc3339_ms`        ``2026-11-22T10:15:30.123Z``                ``ce_time``, from epoch ms
:func:`format_time`       the same, from a datetime                   alerts, to every sink
========================  ==========================================  ============================

and back: :func:`epoch_ms` (a datetime or epoch ms as epoch ms, floored) and :func:`as_utc`
(a time read from the store as an aware datetime). The wire format itself, RFC 3339 with
milliseconds, belongs to the contract: :func:`rfc3339_ms`, :func:`format_time` and
:func:`epoch_ms` are ``sagascope.instrumentation.contract``'s (the instrumentation imports
nothing of ours, so its definitions are the ones everyone shares), parsed back by
``contract.parse_time``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sagascope.instrumentation.contract import epoch_ms, format_time, rfc3339_ms
from sagascope.store.exceptions import StoreError

__all__ = [
    "as_utc",
    "clickhouse_literal",
    "clickhouse_ms",
    "clickhouse_param",
    "clickhouse_us",
    "epoch_ms",
    "format_time",
    "rfc3339_ms",
    "stored_ms",
]

def clickhouse_ms(ms: int) -> str:
    """Milliseconds since the epoch as the ``seconds.mmm`` text a DateTime64(3) column stores."""
    if ms >= 1_000_000_000_000:
        return f"{ms // 1000}.{ms % 1000:03d}"
    # Short epoch numbers are ambiguous to ClickHouse's best-effort parser: spell them out.
    ms = max(ms, 0)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}"


def clickhouse_us(ns: Any) -> str:
    """Nanoseconds since the epoch as ``seconds.micros`` for a DateTime64(6) column.

    Anything but a number (a span without a time) stores as the epoch.
    """
    value = int(ns) if isinstance(ns, (int, float)) and not isinstance(ns, bool) else 0
    micros = max(value, 0) // 1000
    if micros < 1_000_000_000_000_000:
        # Short epoch numbers are ambiguous to ClickHouse's best-effort parser.
        seconds = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(micros // 1_000_000))
        return f"{seconds}.{micros % 1_000_000:06d}"
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def stored_ms(value: Any) -> str:
    """A DateTime64(3) value as it was written (:func:`clickhouse_ms`), from the datetime it
    reads back as; text (a row not yet written) is returned as it is."""
    if isinstance(value, datetime):
        return clickhouse_ms(epoch_ms(value))
    return str(value)


def clickhouse_param(moment: datetime) -> str:
    """A DateTime64(3, 'UTC') query parameter, the same text for both backends (naive is UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def clickhouse_literal(moment: datetime) -> str:
    """UTC text both DateTime64 and (for whole seconds) DateTime parameters accept, as chDB
    takes it and as a ClickHouse literal inside arrays and maps (naive is UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="microseconds" if moment.microsecond else "seconds")


def as_utc(value: Any) -> datetime:
    """A time read from the store (or given by a caller) as an aware UTC datetime; naive is UTC.

    Raises:
        StoreError: if ``value`` is not a datetime (the store returned another type).
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value if value.tzinfo is UTC else value.astimezone(UTC)
    raise StoreError(f"expected a time from the store, got {value!r}")
