"""Checks on recorded spans that several instrumentation tests make the same way."""

from __future__ import annotations

from typing import Any

from sagascope.testing import SpanCapture


def errored_consumer_span(spans: SpanCapture) -> Any:
    """The one CONSUMER span recorded, checked to be an error that recorded its exception."""
    (span,) = spans.finished(kind="CONSUMER")
    assert span.status.status_code.name == "ERROR"
    assert [event.name for event in span.events] == ["exception"]
    return span
