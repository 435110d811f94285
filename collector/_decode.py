"""Kafka record -> store row. Raw bytes are decoded here, and nothing here raises on bad input.

Whatever a record carries (invalid UTF-8, invalid JSON, a huge payload, a malformed
``traceparent``, no headers at all) it becomes a row; what was wrong goes to ``parse_error``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sagascope.collector._correlate import Correlator, parse_event_time
from sagascope.collector._redact import Redactor
from sagascope.instrumentation.contract import (
    CE_CAUSATIONID,
    CE_COMPENSATES,
    CE_ID,
    CE_KIND,
    CE_SAGAID,
    CE_SAGASTATUS,
    CE_SAGATYPE,
    CE_SOURCE,
    CE_STEP,
    CE_TIME,
    CE_TYPE,
    TRACEPARENT,
    MalformedHeader,
    decode_headers,
    parse_time,
    parse_traceparent,
)
from sagascope.store.headers import elide
from sagascope.store.timetext import clickhouse_ms as ms_text

_sha256 = hashlib.sha256
try:  # strict RFC 8259 and several times faster than json.loads
    from orjson import loads as _json_loads
except ImportError:  # pragma: no cover - orjson comes with the collector extra
    _json_loads = json.loads  # type: ignore[assignment]
_EMPTY: dict[str, str] = {}
_NOT_PARSED = object()
#: The common, valid shape of a version-00 traceparent; anything else goes to the full parser.
_TRACEPARENT_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_from_iso = datetime.fromisoformat
#: Event times are stored from the epoch to 2286-11-20 (13-digit milliseconds).
_MAX_EVENT_MS = 10**13


@dataclass(frozen=True)
class DecodeContext:
    """What decoding needs besides the record: compiled rules and the payload cap."""

    correlator: Correlator
    redactor: Redactor
    payload_cap_bytes: int


def clean_text(value: str) -> str:
    """``value`` with lone surrogates (possible from JSON ``\\ud800`` escapes) replaced."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", errors="replace").decode("utf-8")
    return value


def _decode_payload(value: bytes, cap: int, errors: list[str]) -> tuple[str, bool, bool]:
    """Payload text (capped), whether it was truncated, whether it is complete valid UTF-8."""
    if len(value) <= cap:
        try:
            return value.decode("utf-8"), False, True
        except UnicodeDecodeError as exc:
            errors.append(f"payload is not valid UTF-8 (byte {exc.start})")
            return value.decode("utf-8", errors="replace"), False, False
    errors.append(f"payload of {len(value)} bytes exceeds the {cap}-byte cap; stored truncated")
    head = value[:cap]
    # The cut may split a multi-byte character; drop at most its 3 leading bytes.
    for trim in range(4):
        try:
            return head[: len(head) - trim].decode("utf-8"), True, True
        except UnicodeDecodeError:
            continue
    errors.append("payload is not valid UTF-8")
    return head.decode("utf-8", errors="replace"), True, False


def _decode_headers(raw: Any, errors: list[str]) -> dict[str, str]:
    if not raw:
        return _EMPTY
    if type(raw) is dict:  # decoded already, while the record batch was parsed (_records)
        return raw
    try:  # all values valid UTF-8, as nearly always; a repeated key keeps its last value
        return {key: value.decode("utf-8") for key, value in raw}
    except (AttributeError, UnicodeDecodeError):  # None or undecodable: the full codec
        headers, header_errors = decode_headers(raw)
        errors.extend(header_errors)
        return headers


def _event_ms(text: str) -> int:
    """Epoch milliseconds of a ``ce_time`` value (raises as ``parse_time`` does)."""
    try:
        moment = _from_iso(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is not UTC:  # naive, another offset, or not ISO
        moment = parse_time(text)
    return _epoch_ms(moment)


def decode_message(
    record: Any, ctx: DecodeContext, ingest_ms: int, ingest_text: str | None = None
) -> dict[str, Any]:
    """A ``messages`` row (without ``chain_hash``) for one kafka-python ``ConsumerRecord``.

    ``ingest_text`` is ``ms_text(ingest_ms)``, when the caller has it already.
    """
    errors: list[str] = []
    headers = _decode_headers(record.headers, errors)
    get = headers.get

    trace_id = span_id = ""
    traceparent = get(TRACEPARENT)
    if traceparent is not None:
        fast = _TRACEPARENT_00.fullmatch(traceparent)
        if fast is not None and fast[1] != _ZERO_TRACE and fast[2] != _ZERO_SPAN:
            trace_id, span_id = fast[1], fast[2]
        else:
            try:
                parsed = parse_traceparent(traceparent)
                trace_id, span_id = parsed.trace_id, parsed.span_id
            except MalformedHeader as exc:
                errors.append(str(exc))

    value: bytes = record.value or b""
    try:  # the common case, inline: within the cap and valid UTF-8
        if len(value) > ctx.payload_cap_bytes:
            raise ValueError
        text, truncated, valid_utf8 = value.decode("utf-8"), False, True
    except ValueError:  # UnicodeDecodeError included
        text, truncated, valid_utf8 = _decode_payload(value, ctx.payload_cap_bytes, errors)
    document: Any = _NOT_PARSED
    if value and valid_utf8 and not truncated:
        try:
            document = _json_loads(text)
        except ValueError as exc:
            errors.append(f"payload is not valid JSON: {exc}")

    key = record.key.decode("utf-8", errors="replace") if record.key is not None else ""
    kafka_ms = record.timestamp if record.timestamp is not None and record.timestamp >= 0 else ingest_ms
    saga_id = get(CE_SAGAID, "")
    saga_type = get(CE_SAGATYPE, "")
    msg_type = get(CE_TYPE, "")
    source = get(CE_SOURCE, "")
    event_ms = kafka_ms
    event_text = get(CE_TIME, "")
    if event_text:
        try:
            event_ms = _event_ms(event_text)
        except (MalformedHeader, OverflowError, ValueError):
            errors.append(f"malformed ce_time {event_text[:80]!r}")
            event_text = ""
        else:
            if not 0 <= event_ms < _MAX_EVENT_MS:
                errors.append(f"ce_time {event_text[:80]!r} is outside the storable range")
                event_ms, event_text = kafka_ms, ""
    correlation = "headers" if saga_id else ""

    rule = ctx.correlator.rule_for(record.topic)
    if rule is not None and not (saga_id and saga_type and msg_type and event_text and source):
        found = rule.extract(None if document is _NOT_PARSED else document, text)
        if not saga_id and found.get("saga_id"):
            saga_id, correlation = clean_text(found["saga_id"]), rule.label
        saga_type = saga_type or clean_text(found.get("saga_type", ""))
        msg_type = msg_type or clean_text(found.get("type", ""))
        source = source or clean_text(found.get("source", ""))
        if not event_text and found.get("event_time"):
            moment = parse_event_time(found["event_time"])
            if moment is None:
                errors.append(f"{rule.label}: unparseable event time {found['event_time'][:80]!r}")
            else:
                event_ms = _epoch_ms(moment)
        if not saga_id and rule.rule.key_fallback and key:
            saga_id, correlation = key, "key"
    if not correlation:
        correlation = "traceparent" if trace_id else "none"

    payload = text
    if ctx.redactor.applies_to(record.topic):
        if document is not _NOT_PARSED:
            document, changed = ctx.redactor.redact_document(record.topic, document)
            if changed:
                payload = clean_text(json.dumps(document, ensure_ascii=False, separators=(",", ":")))
        else:
            payload = ctx.redactor.redact_text(record.topic, text)

    row = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "kafka_time": ms_text(kafka_ms),
        "event_time": ms_text(event_ms),
        "ingest_time": ingest_text if ingest_text is not None else ms_text(ingest_ms),
        "kafka_key": key,
        "trace_id": trace_id,
        "span_id": span_id,
        "saga_id": saga_id,
        "saga_type": saga_type,
        "message_id": get(CE_ID, ""),
        "causation_id": get(CE_CAUSATIONID, ""),
        "kind": get(CE_KIND, ""),
        "type": msg_type,
        "source": source,
        "step": get(CE_STEP, ""),
        "saga_status": get(CE_SAGASTATUS, ""),
        "compensates": get(CE_COMPENSATES, ""),
        "headers": headers,
        "payload": payload,
        "payload_size": len(value),
        "payload_sha256": _sha256(value).hexdigest(),
        "payload_truncated": truncated,
        "correlation": correlation,
        "parse_error": "; ".join(errors),
        "headers_elided": 0,
    }
    if headers:
        row["headers"], row["headers_elided"] = elide(headers, row, event_ms)
    return row


def _epoch_ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000 // 1)


def _ns_text(ns: Any) -> str:
    """Nanoseconds since the epoch as ``seconds.micros`` for a DateTime64(6) column."""
    value = int(ns) if isinstance(ns, (int, float)) and not isinstance(ns, bool) else 0
    micros = max(value, 0) // 1000
    if micros < 1_000_000_000_000_000:
        # Short epoch numbers are ambiguous to ClickHouse's best-effort parser.
        seconds = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(micros // 1_000_000))
        return f"{seconds}.{micros % 1_000_000:06d}"
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _str(value: Any) -> str:
    if value is None:
        return ""
    return clean_text(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def decode_span(record: Any, ctx: DecodeContext, ingest_ms: int) -> dict[str, Any]:
    """A ``spans`` row for one record of the telemetry topic (format in docs/internals.md).

    A record that is not a span is still stored, with its payload and ``parse_error``.
    """
    errors: list[str] = []
    value: bytes = record.value or b""
    text, truncated, valid_utf8 = _decode_payload(value, ctx.payload_cap_bytes, errors)
    span: Any = None
    if valid_utf8 and not truncated:
        try:
            span = _json_loads(text)
        except ValueError as exc:
            errors.append(f"span is not valid JSON: {exc}")
    if span is not None and not isinstance(span, dict):
        errors.append("span is not a JSON object")
        span = None
    if span is None:
        span = {}
        if not errors:
            errors.append("empty span record")
    attributes = span.get("attributes")
    links = span.get("links")
    events = span.get("events")
    return {
        "trace_id": _str(span.get("trace_id")),
        "span_id": _str(span.get("span_id")),
        "parent_span_id": _str(span.get("parent_span_id")),
        "name": _str(span.get("name")),
        "kind": _str(span.get("kind")),
        "service": _str(span.get("service")),
        "start_time": _ns_text(span.get("start_time_unix_nano")),
        "end_time": _ns_text(span.get("end_time_unix_nano")),
        "status_code": _str(span.get("status_code")),
        "status_message": _str(span.get("status_message")),
        "saga_id": _str(span.get("saga_id")),
        "saga_type": _str(span.get("saga_type")),
        "message_id": _str(span.get("message_id")),
        "attributes": (
            {_str(k): _str(v) for k, v in attributes.items()} if isinstance(attributes, dict) else {}
        ),
        "links": [
            {"trace_id": _str(link.get("trace_id")), "span_id": _str(link.get("span_id"))}
            for link in (links if isinstance(links, list) else [])
            if isinstance(link, dict)
        ],
        "events": clean_text(json.dumps(events if isinstance(events, list) else [], ensure_ascii=False)),
        "ingest_time": ms_text(ingest_ms),
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "parse_error": "; ".join(errors),
        "payload": ctx.redactor.redact_text(record.topic, text) if errors else "",
    }
