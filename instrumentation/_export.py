"""Span export to Kafka (the telemetry topic the collector stores in ``spans``)."""

from __future__ import annotations

import inspect
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from sagascope.instrumentation import contract as c
from sagascope.instrumentation._saga import ATTR_MESSAGE_ID, ATTR_SAGA_ID, ATTR_SAGA_TYPE, ATTR_SERVICE

log = logging.getLogger(__name__)

#: Default topic for spans; the collector stores its records in ``spans``.
DEFAULT_TELEMETRY_TOPIC = "_sagascope.spans"
#: ``ce_type`` header of a span record.
SPAN_RECORD_TYPE = "sagascope.span.v1"
_SPAN_RECORD_HEADERS = [(c.CE_TYPE, SPAN_RECORD_TYPE.encode())]


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """A finished span in the span wire format of docs/internals.md."""
    ctx = span.context
    parent = span.parent
    attributes = dict(span.attributes or {})
    resource_attributes = span.resource.attributes if span.resource is not None else {}
    service = attributes.get(ATTR_SERVICE) or resource_attributes.get(SERVICE_NAME, "")
    status = span.status
    return {
        "trace_id": format(ctx.trace_id, "032x") if ctx else "",
        "span_id": format(ctx.span_id, "016x") if ctx else "",
        "parent_span_id": format(parent.span_id, "016x") if parent else "",
        "name": span.name,
        "kind": span.kind.name,
        "service": str(service),
        "start_time_unix_nano": span.start_time or 0,
        "end_time_unix_nano": span.end_time or 0,
        "status_code": status.status_code.name if status else StatusCode.UNSET.name,
        "status_message": (status.description or "") if status else "",
        "saga_id": str(attributes.get(ATTR_SAGA_ID, "")),
        "saga_type": str(attributes.get(ATTR_SAGA_TYPE, "")),
        "message_id": str(attributes.get(ATTR_MESSAGE_ID, "")),
        "attributes": {key: _stringify(value) for key, value in attributes.items()},
        "links": [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
            }
            for link in span.links
        ],
        "events": [
            {
                "name": event.name,
                "time_unix_nano": event.timestamp,
                "attributes": {k: _stringify(v) for k, v in (event.attributes or {}).items()},
            }
            for event in span.events
        ],
    }


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, tuple | list):
        return json.dumps(list(value))
    return str(value).lower() if isinstance(value, bool) else str(value)


class KafkaSpanExporter(SpanExporter):
    """Writes each finished span as one JSON record to the telemetry topic (key = trace id).

    Args:
        producer_or_bootstrap: a ``KafkaProducer`` to share (not closed at shutdown), or
            bootstrap servers, for which the exporter makes and owns a producer.
        topic: the telemetry topic.
        max_block_ms: how long a send may wait for metadata when the broker is away
            (own producer only); export never blocks the service for longer.
        producer_config: more ``kafka.KafkaProducer`` arguments for the exporter's own
            producer, passed through as given (e.g. ``security_protocol="SSL"``,
            ``ssl_cafile``, ``sasl_mechanism``, ``sasl_plain_username``); they override the
            exporter's defaults. Only with bootstrap servers: a shared producer has its own.

    Raises:
        TypeError: a producer that is not kafka-python's, or ``producer_config`` beside one.
    """

    def __init__(
        self,
        producer_or_bootstrap: Any,
        topic: str = DEFAULT_TELEMETRY_TOPIC,
        *,
        max_block_ms: int = 5000,
        producer_config: Mapping[str, Any] | None = None,
    ) -> None:
        if not topic:
            raise ValueError("KafkaSpanExporter needs a telemetry topic")
        self.topic = topic
        self._lock = threading.Lock()
        self._failures = 0
        self._shutdown = False
        self._producer: Any = None
        self._bootstrap: Any = None
        self._max_block_ms = max_block_ms
        self._producer_config = dict(producer_config or {})
        if isinstance(producer_or_bootstrap, str | list | tuple):
            if not producer_or_bootstrap:
                raise ValueError("KafkaSpanExporter needs bootstrap servers or a producer")
            # Made at the first export, so a broker that is away does not fail start-up.
            self._bootstrap = producer_or_bootstrap
            self._owns_producer = True
        else:
            # An InstrumentedProducer would add saga headers to span records: use its producer.
            self._producer = getattr(producer_or_bootstrap, "producer", producer_or_bootstrap)
            send = getattr(self._producer, "send", None)
            # Export runs in the span processor's thread and relies on kafka-python's futures.
            if not callable(send) or inspect.iscoroutinefunction(send):
                raise TypeError("KafkaSpanExporter needs a kafka.KafkaProducer or bootstrap servers")
            if self._producer_config:
                raise TypeError("producer_config is for the exporter's own producer; "
                                "configure a shared producer where it is made")
            self._owns_producer = False

    def _get_producer(self) -> Any:
        with self._lock:
            if self._producer is None:
                from kafka import KafkaProducer

                # kafka-python 3.x waits bootstrap_timeout_ms for a broker, 2.x
                # api_version_auto_timeout_ms: bound both by max_block_ms.
                timeout_key = (
                    "bootstrap_timeout_ms"
                    if "bootstrap_timeout_ms" in KafkaProducer.DEFAULT_CONFIG
                    else "api_version_auto_timeout_ms"
                )
                config: dict[str, Any] = {
                    "client_id": "sagascope-span-exporter",
                    "linger_ms": 50,
                    "acks": 1,
                    "max_block_ms": self._max_block_ms,
                    timeout_key: self._max_block_ms,
                    **self._producer_config,
                }
                self._producer = KafkaProducer(bootstrap_servers=self._bootstrap, **config)
            return self._producer

    @property
    def failures(self) -> int:
        """Span records that could not be sent (logged, counted, not retried)."""
        return self._failures

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        try:
            producer = self._get_producer()
            for span in spans:
                record = span_to_dict(span)
                future = producer.send(
                    self.topic,
                    value=json.dumps(record, separators=(",", ":")).encode(),
                    key=record["trace_id"].encode(),
                    headers=list(_SPAN_RECORD_HEADERS),
                )
                future.add_errback(self._on_error)
        except Exception as exc:
            with self._lock:
                self._failures += len(spans)
            log.warning("span export to %s failed: %s", self.topic, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _on_error(self, exc: BaseException) -> None:
        with self._lock:
            self._failures += 1
        log.warning("span record to %s not delivered: %s", self.topic, exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self._producer is None:
            return True
        try:
            self._producer.flush(timeout=timeout_millis / 1000)
            return True
        except Exception as exc:
            log.warning("span exporter flush failed: %s", exc)
            return False

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        self.force_flush()
        if self._owns_producer and self._producer is not None:
            try:
                self._producer.close(timeout=5)
            except Exception as exc:
                log.warning("span exporter close failed: %s", exc)


def configure_tracing(
    service: str,
    bootstrap_servers: str,
    telemetry_topic: str = DEFAULT_TELEMETRY_TOPIC,
    *,
    extra_exporters: Sequence[SpanExporter] = (),
    set_global: bool = True,
    producer_config: Mapping[str, Any] | None = None,
) -> TracerProvider:
    """A ``TracerProvider`` for ``service`` that batches spans to the telemetry topic.

    Args:
        service: ``service.name`` of the resource.
        bootstrap_servers: Kafka bootstrap servers for the span records.
        telemetry_topic: where span records go (the collector's telemetry topic).
        extra_exporters: more exporters, each behind its own ``BatchSpanProcessor`` (e.g.
            ``OTLPSpanExporter()`` from the ``otlp`` extra, for Jaeger or Tempo).
        set_global: also make it OpenTelemetry's global tracer provider.
        producer_config: more ``kafka.KafkaProducer`` arguments for the span records'
            producer, e.g. TLS or SASL: ``{"security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512", ...}``. Passed through as given; read from
            wherever the application keeps its secrets (this library reads no environment).
    """
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(BatchSpanProcessor(
        KafkaSpanExporter(bootstrap_servers, telemetry_topic, producer_config=producer_config)
    ))
    for exporter in extra_exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider
