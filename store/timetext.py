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
:func:`rfc3339_ms`        ``2026-11-22T10:15:30.123Z``                ``ce_time`` rebuilt from a row
========================  ==========================================  ============================

and back: :func:`epoch_ms` (a stored time or epoch ms as epoch ms) and :func:`as_utc` (a
time read from the store as an aware datetime). The wire format itself, RFC 3339 with
milliseconds, is written by ``sagascope.instrumentation.contract.format_time`` and parsed by
``contract.parse_time``; :func:`rfc3339_ms` writes the same text from epoch ms, cached per
second because it runs for every record decoded.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sagascope.store.exceptions import StoreError

__all__ = [
    "as_utc",
    "clickhouse_literal",
    "clickhouse_ms",
    "clickhouse_param",
    "clickhouse_us",
    "epoch_ms",
    "rfc3339_ms",
    "stored_ms",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_second_texts: dict[int, str] = {}


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


def rfc3339_ms(ms: int) -> str:
    """``ce_time`` as the instrumentation writes it (``contract.format_time``), from epoch
    ms, with the seconds' text cached (this runs for every record decoded)."""
    seconds, millis = divmod(ms, 1000)
    prefix = _second_texts.get(seconds)
    if prefix is None:
        if len(_second_texts) > 4096:
            _second_texts.clear()
        prefix = _second_texts[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{prefix}.{millis:03d}Z"


def epoch_ms(value: Any) -> int:
    """Milliseconds since the epoch of a datetime (naive is UTC), exact to the millisecond
    (no float rounding); any other value is taken as epoch ms already."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - _EPOCH
        return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    return int(value)


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
