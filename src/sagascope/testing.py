"""Helpers for testing services that use ``sagascope.instrumentation``.

    from sagascope.testing import capture_spans, consumer_record, contract_violations

    with capture_spans() as spans:
        handler = saga_handler("payment", tracer_provider=spans.tracer_provider)(on_command)
        handler(consumer_record("payments", b"{}", headers=[...]))
    assert spans.finished(kind="CONSUMER")
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sagascope.instrumentation import contract as c

__all__ = [
    "SpanCapture",
    "capture_spans",
    "consumer_record",
    "contract_violations",
    "header_value",
]

_REQUIRED = (c.TRACEPARENT, c.CE_SPECVERSION, c.CE_ID, c.CE_SOURCE, c.CE_TYPE, c.CE_TIME, c.CE_KIND)


class SpanCapture:
    """Finished spans of a private ``TracerProvider`` (not the global one)."""

    def __init__(self, service: str) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def finished(self, *, kind: str | None = None, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans, optionally only those of a kind (``"CONSUMER"``) or name."""
        return [
            span
            for span in self.exporter.get_finished_spans()
            if (kind is None or span.kind.name == kind) and (name is None or span.name == name)
        ]

    def clear(self) -> None:
        self.exporter.clear()


@contextmanager
def capture_spans(service: str = "test") -> Iterator[SpanCapture]:
    """A ``SpanCapture`` whose provider is shut down on exit."""
    capture = SpanCapture(service)
    try:
        yield capture
    finally:
        capture.tracer_provider.shutdown()


def contract_violations(
    headers: Iterable[tuple[str, bytes | None]] | None, *, saga: bool = True
) -> list[str]:
    """What in a record's headers breaks the wire contract; empty when it follows it.

    Args:
        headers: Kafka's ``[(key, bytes)]``.
        saga: also require ``ce_sagaid`` and ``ce_sagatype``.
    """
    items = list(headers or ())
    problems: list[str] = []
    keys = [key for key, _ in items]
    # Kafka allows a key to repeat; the contract's own headers must appear once.
    problems += [
        f"header {key!r} repeated"
        for key in sorted(set(keys) & set(c.CONTRACT_HEADERS))
        if keys.count(key) > 1
    ]
    decoded, errors = c.decode_headers(items)
    problems += errors
    required = _REQUIRED + ((c.CE_SAGAID, c.CE_SAGATYPE) if saga else ())
    problems += [f"missing {key}" for key in required if not decoded.get(key)]
    checks: Sequence[tuple[str, Any]] = (
        (c.TRACEPARENT, c.parse_traceparent),
        (c.CE_TIME, c.parse_time),
    )
    for key, parse in checks:
        if decoded.get(key):
            try:
                parse(decoded[key])
            except c.MalformedHeader as exc:
                problems.append(str(exc))
    if decoded.get(c.CE_SPECVERSION, c.SPECVERSION) != c.SPECVERSION:
        problems.append(f"ce_specversion is {decoded[c.CE_SPECVERSION]!r}, not 1.0")
    if decoded.get(c.CE_KIND) and decoded[c.CE_KIND] not in c.KINDS:
        problems.append(f"unknown ce_kind {decoded[c.CE_KIND]!r}")
    if c.CE_SAGASTATUS in decoded and decoded[c.CE_SAGASTATUS] not in c.SAGA_STATUSES:
        problems.append(f"unknown ce_sagastatus {decoded[c.CE_SAGASTATUS]!r}")
    for key in (c.CE_STEP, c.CE_COMPENSATES, c.CE_CAUSATIONID):
        if key in decoded and not decoded[key]:
            problems.append(f"{key} present but empty")
    return problems


def consumer_record(
    topic: str,
    value: bytes | None = None,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
    *,
    partition: int = 0,
    offset: int = 0,
    timestamp_ms: int = 0,
) -> Any:
    """A kafka-python ``ConsumerRecord`` (2.x or 3.x field set) for calling a handler directly."""
    from kafka.consumer.fetcher import ConsumerRecord

    fields: dict[str, Any] = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": timestamp_ms,
        "timestamp_type": 0,
        "key": key,
        "value": value,
        "headers": list(headers),
        "checksum": None,
        "serialized_key_size": len(key) if key is not None else -1,
        "serialized_value_size": len(value) if value is not None else -1,
        "serialized_header_size": -1,
        "leader_epoch": -1,
    }
    return ConsumerRecord(**{name: fields.get(name) for name in ConsumerRecord._fields})


def header_value(record: Any, key: str) -> str | None:
    """The last value of header ``key`` of a record (or of a header list), as text; None if absent."""
    headers = getattr(record, "headers", record) or ()
    found: str | None = None
    for item_key, value in headers:
        if item_key == key:
            found = value.decode("utf-8", errors="replace") if value is not None else ""
    return found
