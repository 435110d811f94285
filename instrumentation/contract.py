"""The wire contract: Kafka header names, and the one codec for them.

CloudEvents 1.0 Kafka binary binding (``ce_*`` headers) plus W3C Trace Context
(``traceparent``/``tracestate``), with saga attributes. Other languages rely on these names;
they never change. Everything here is dependency-free so the collector can decode with it too.
``MalformedHeader`` (raised by the parsers) lives in ``sagascope.instrumentation.exceptions``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sagascope.instrumentation.exceptions import MalformedHeader

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
CE_SPECVERSION = "ce_specversion"
CE_ID = "ce_id"
CE_SOURCE = "ce_source"
CE_TYPE = "ce_type"
CE_TIME = "ce_time"
CE_SAGAID = "ce_sagaid"
CE_SAGATYPE = "ce_sagatype"
CE_KIND = "ce_kind"
CE_CAUSATIONID = "ce_causationid"
CE_STEP = "ce_step"
CE_SAGASTATUS = "ce_sagastatus"
CE_COMPENSATES = "ce_compensates"
#: CloudEvents Correlation extension: the saga id, written beside ``ce_sagaid`` so CloudEvents
#: tools read it; a record carrying only this one (a CloudEvents SDK wrote it) is read as ours.
CE_CORRELATIONID = "ce_correlationid"

SPECVERSION = "1.0"

#: Header names of the contract, in the order the producer writes them.
CONTRACT_HEADERS: tuple[str, ...] = (
    TRACEPARENT,
    TRACESTATE,
    CE_SPECVERSION,
    CE_ID,
    CE_SOURCE,
    CE_TYPE,
    CE_TIME,
    CE_SAGAID,
    CE_SAGATYPE,
    CE_KIND,
    CE_CAUSATIONID,
    CE_STEP,
    CE_SAGASTATUS,
    CE_COMPENSATES,
    CE_CORRELATIONID,
)

KIND_COMMAND = "command"
KIND_EVENT = "event"
KINDS = frozenset({KIND_COMMAND, KIND_EVENT})

STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_COMPENSATING = "compensating"
STATUS_COMPENSATED = "compensated"
#: Values of ``ce_sagastatus``; ``running`` and ``stalled`` are derived, never sent.
SAGA_STATUSES = frozenset({STATUS_COMPLETED, STATUS_FAILED, STATUS_COMPENSATING, STATUS_COMPENSATED})

#: The saga status a marker message (``mark_outcome``) carries, and its ``ce_type``.
OUTCOME_TYPES = {
    STATUS_COMPLETED: "SagaCompleted",
    STATUS_FAILED: "SagaFailed",
    STATUS_COMPENSATING: "SagaCompensating",
    STATUS_COMPENSATED: "SagaCompensated",
}

_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: str
    span_id: str
    flags: int = 1

    def format(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"


def parse_traceparent(value: str) -> TraceParent:
    """Parse a W3C ``traceparent`` value.

    Raises:
        MalformedHeader: if it is not ``version-traceid-spanid-flags`` with non-zero ids.
    """
    m = _TRACEPARENT_RE.match(value.strip())
    if m is None or m.group(1) == "ff":
        raise MalformedHeader(f"malformed traceparent {value[:80]!r}")
    version, trace_id, span_id, flags, rest = m.groups()
    if version == "00" and rest:
        raise MalformedHeader(f"malformed traceparent {value[:80]!r}")
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        raise MalformedHeader(f"traceparent with an all-zero id {value[:80]!r}")
    return TraceParent(trace_id, span_id, int(flags, 16))


def decode_headers(
    headers: Iterable[tuple[str, bytes | None]] | None,
) -> tuple[dict[str, str], list[str]]:
    """Kafka's ``[(key, bytes)]`` to ``{key: str}``; never raises.

    Undecodable values are kept with replacement characters and reported in the returned
    error list. A repeated key keeps its last value (as Kafka clients' header lookup does).
    """
    out: dict[str, str] = {}
    errors: list[str] = []
    for key, value in headers or ():
        if value is None:
            out[key] = ""
            continue
        try:
            out[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            out[key] = value.decode("utf-8", errors="replace")
            errors.append(f"header {key!r} is not valid UTF-8")
    return out, errors


def saga_id_of(headers: Mapping[str, str]) -> str:
    """The saga id decoded headers carry: ``ce_sagaid``, else the CloudEvents ``ce_correlationid``."""
    return headers.get(CE_SAGAID) or headers.get(CE_CORRELATIONID) or ""


def new_message_id() -> str:
    """A UUIDv7 (time-ordered, RFC 9562) as a string."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Epoch second -> its text up to the milliseconds ("2026-11-22T10:15:30."), and the
#: millisecond texts ("123Z"): a time is two lookups and one concatenation.
_second_texts: dict[int, str] = {}
_MILLI_TEXTS = tuple(f"{millis:03d}Z" for millis in range(1000))


def epoch_ms(value: datetime | int) -> int:
    """Milliseconds since the epoch of a datetime (naive is UTC), floored and exact (no float
    rounding); any other value is taken as epoch ms already."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - _EPOCH
        return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    return int(value)


def rfc3339_ms(ms: int) -> str:
    """Epoch ms as ``ce_time`` is written: RFC 3339 in UTC with milliseconds, e.g.
    ``2026-11-22T10:15:30.123Z``. The one definition of the wire's time text; the seconds'
    text is cached, as this runs for every record decoded and every millisecond sent in."""
    seconds, millis = divmod(ms, 1000)
    prefix = _second_texts.get(seconds)
    if prefix is None:
        if len(_second_texts) > 4096:
            _second_texts.clear()
        prefix = _second_texts[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds))
    return prefix + _MILLI_TEXTS[millis]


def format_time(moment: datetime | float | None = None) -> str:
    """``moment`` as :func:`rfc3339_ms` writes it, floored to the millisecond.

    ``moment`` is a datetime (naive means UTC), seconds since the epoch, or None for now.
    """
    if moment is None:
        ms = time.time_ns() // 1_000_000
    elif isinstance(moment, datetime):
        ms = epoch_ms(moment)
    else:
        # Float seconds hold about a microsecond: read them so (as datetime does), then floor.
        ms = round(moment * 1_000_000) // 1000
    return rfc3339_ms(ms)


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 / ISO 8601 timestamp into an aware UTC datetime.

    Raises:
        MalformedHeader: if it is not a timestamp.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedHeader(f"malformed time {value[:80]!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
