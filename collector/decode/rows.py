"""Kafka record -> store row. Raw bytes are decoded here, and nothing here raises on bad input.

Whatever a record carries (invalid UTF-8, invalid JSON, a huge payload, a malformed
``traceparent``, no headers at all) it becomes a row; what was wrong goes to ``parse_error``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sagascope.collector.decode.correlate import Correlator, parse_event_time
from sagascope.collector.decode.redact import Redactor
from sagascope.instrumentation.contract import (
    CE_CAUSATIONID,
    CE_COMPENSATES,
    CE_ID,
    CE_KIND,
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
    saga_id_of,
)
from sagascope.store.headers import elide
from sagascope.store.timetext import clickhouse_ms as ms_text
from sagascope.store.timetext import clickhouse_us, epoch_ms

log = logging.getLogger(__name__)
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
    if type(raw) is dict:  # decoded already, while the record batch was parsed (record_batches)
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
    return epoch_ms(moment)


def decode_message(
    record: Any, ctx: DecodeContext, ingest_ms: int, ingest_text: str | None = None
) -> dict[str, Any]:
    """A ``messages`` row (without ``chain_hash``) for one kafka-python ``ConsumerRecord``.

    ``ingest_text`` is ``ms_text(ingest_ms)``, when the caller has it already.
    """
    errors: list[str] = []
    headers = _decode_headers(record.headers, errors)
    get = headers.get
    trace_id, span_id = _trace_ids(get(TRACEPARENT), errors)
    value: bytes = record.value or b""
    text, truncated, document = _payload(value, ctx.payload_cap_bytes, errors)
    key = record.key.decode("utf-8", errors="replace") if record.key is not None else ""
    kafka_ms = record.timestamp if record.timestamp is not None and record.timestamp >= 0 else ingest_ms
    event_ms, event_text = _event_time(get(CE_TIME, ""), kafka_ms, errors)
    # ce_sagaid, or the CloudEvents correlation id a CloudEvents SDK writes in its place.
    found = _Correlated(
        saga_id_of(headers), get(CE_SAGATYPE, ""), get(CE_TYPE, ""), get(CE_SOURCE, ""),
        get(CE_KIND, ""), get(CE_STEP, ""), get(CE_SAGASTATUS, ""), get(CE_COMPENSATES, ""),
    )
    found.correlation = "headers" if found.saga_id else ""
    rule = ctx.correlator.rule_for(record.topic)
    if rule is not None and not (
        found.saga_id and found.saga_type and found.type and event_text and found.source
    ):
        event_ms = _apply_rule(
            rule, found, document, text, headers, key, record.topic, event_ms, event_text, errors
        )
    if not found.correlation:
        found.correlation = "traceparent" if trace_id else "none"
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
        "saga_id": found.saga_id,
        "saga_type": found.saga_type,
        "message_id": get(CE_ID, ""),
        "causation_id": get(CE_CAUSATIONID, ""),
        "kind": found.kind,
        "type": found.type,
        "source": found.source,
        "step": found.step,
        "saga_status": found.saga_status,
        "compensates": found.compensates,
        "headers": headers,
        "payload": _redacted(ctx.redactor, record.topic, document, text),
        "payload_size": len(value),
        "payload_sha256": _sha256(value).hexdigest(),
        "payload_truncated": truncated,
        "correlation": found.correlation,
        "parse_error": "; ".join(errors),
        "headers_elided": 0,
    }
    if headers:
        row["headers"], row["headers_elided"] = elide(headers, row, event_ms)
    return row


def _trace_ids(traceparent: str | None, errors: list[str]) -> tuple[str, str]:
    """(trace id, span id) of a ``traceparent`` header ("" when absent or malformed)."""
    if traceparent is None:
        return "", ""
    fast = _TRACEPARENT_00.fullmatch(traceparent)
    if fast is not None and fast[1] != _ZERO_TRACE and fast[2] != _ZERO_SPAN:
        return fast[1], fast[2]
    try:
        parsed = parse_traceparent(traceparent)
    except MalformedHeader as exc:
        errors.append(str(exc))
        return "", ""
    return parsed.trace_id, parsed.span_id


def _payload(value: bytes, cap: int, errors: list[str]) -> tuple[str, bool, Any]:
    """(payload text, capped; whether truncated; its JSON document or _NOT_PARSED)."""
    try:  # the common case, inline: within the cap and valid UTF-8
        if len(value) > cap:
            raise ValueError
        text, truncated, valid_utf8 = value.decode("utf-8"), False, True
    except ValueError:  # UnicodeDecodeError included
        text, truncated, valid_utf8 = _decode_payload(value, cap, errors)
    document: Any = _NOT_PARSED
    if value and valid_utf8 and not truncated:
        try:
            document = _json_loads(text)
        except ValueError as exc:
            errors.append(f"payload is not valid JSON: {exc}")
    return text, truncated, document


def _event_time(text: str, kafka_ms: int, errors: list[str]) -> tuple[int, str]:
    """(event ms, the ``ce_time`` text it came from or "") with the Kafka time as fallback."""
    if not text:
        return kafka_ms, ""
    try:
        event_ms = _event_ms(text)
    except (MalformedHeader, OverflowError, ValueError):
        errors.append(f"malformed ce_time {text[:80]!r}")
        return kafka_ms, ""
    if not 0 <= event_ms < _MAX_EVENT_MS:
        errors.append(f"ce_time {text[:80]!r} is outside the storable range")
        return kafka_ms, ""
    return event_ms, text


@dataclass
class _Correlated:
    """The saga attributes of a message, from headers first, then a correlation rule."""

    saga_id: str
    saga_type: str
    type: str
    source: str
    kind: str
    step: str
    saga_status: str
    compensates: str
    correlation: str = ""


def _apply_rule(
    rule: Any, found: _Correlated, document: Any, text: str, headers: dict[str, str], key: str,
    topic: str, event_ms: int, event_text: str, errors: list[str],
) -> int:
    """Fill what the headers left empty from the topic's correlation rule; the event ms."""
    extracted = rule.extract(None if document is _NOT_PARSED else document, text, headers, key, topic)
    if not found.saga_id and extracted.get("saga_id"):
        found.saga_id, found.correlation = clean_text(extracted["saga_id"]), rule.label
    found.saga_type = found.saga_type or clean_text(extracted.get("saga_type", ""))
    found.type = found.type or clean_text(extracted.get("type", ""))
    found.source = found.source or clean_text(extracted.get("source", ""))
    found.kind = found.kind or clean_text(extracted.get("kind", ""))
    found.step = found.step or clean_text(extracted.get("step", ""))
    found.saga_status = found.saga_status or extracted.get("saga_status", "")
    found.compensates = found.compensates or clean_text(extracted.get("compensates", ""))
    if not event_text and extracted.get("event_time"):
        moment = parse_event_time(extracted["event_time"])
        if moment is None:
            errors.append(f"{rule.label}: unparseable event time {extracted['event_time'][:80]!r}")
        else:
            event_ms = epoch_ms(moment)
    if not found.saga_id and rule.rule.key_fallback and key:
        found.saga_id, found.correlation = key, "key"
    return event_ms


def _redacted(redactor: Redactor, topic: str, document: Any, text: str) -> str:
    """The payload text to store, with the topic's redaction rules applied."""
    if not redactor.applies_to(topic):
        return text
    if document is _NOT_PARSED:
        return redactor.redact_text(topic, text)
    document, changed = redactor.redact_document(topic, document)
    if not changed:
        return text
    return clean_text(json.dumps(document, ensure_ascii=False, separators=(",", ":")))


def _str(value: Any) -> str:
    if value is None:
        return ""
    return clean_text(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


#: The span's fields stored as text under their own names (columns of the ``spans`` table).
_SPAN_TEXT_FIELDS = (
    "trace_id", "span_id", "parent_span_id", "name", "kind", "service",
    "status_code", "status_message", "saga_id", "saga_type", "message_id",
)


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
        **{name: _str(span.get(name)) for name in _SPAN_TEXT_FIELDS},
        "start_time": clickhouse_us(span.get("start_time_unix_nano")),
        "end_time": clickhouse_us(span.get("end_time_unix_nano")),
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


def decode_row(
    record: Any, ctx: DecodeContext, ingest_ms: int, ingest_text: str, *, spans: bool
) -> dict[str, Any]:
    """The ``spans`` or ``messages`` row of a record; if decoding fails after all (it is
    total; this is the last line of defence), a minimal row carrying the failure."""
    try:
        if spans:
            return decode_span(record, ctx, ingest_ms)
        return decode_message(record, ctx, ingest_ms, ingest_text)
    except Exception as exc:
        log.exception(
            "decode failed topic=%s partition=%d offset=%d",
            record.topic, record.partition, record.offset,
        )
        return fallback_row(record, ingest_ms, f"collector could not decode: {exc!r}", spans=spans)


def fallback_row(record: Any, ingest_ms: int, error: str, *, spans: bool) -> dict[str, Any]:
    """A minimal row for a record the decoder failed on, so that nothing is dropped."""
    now = ms_text(ingest_ms)
    if spans:
        return {
            "topic": record.topic, "partition": record.partition, "offset": record.offset,
            "ingest_time": now, "parse_error": error,
        }
    value = record.value or b""
    return {
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
        "kafka_time": now, "event_time": now, "ingest_time": now, "kafka_key": "",
        "trace_id": "", "span_id": "", "saga_id": "", "saga_type": "", "message_id": "",
        "causation_id": "", "kind": "", "type": "", "source": "", "step": "",
        "saga_status": "", "compensates": "", "headers": {}, "payload": "",
        "payload_size": len(value), "payload_sha256": _sha256(value).hexdigest(),
        "payload_truncated": True, "correlation": "none", "parse_error": error,
    }
