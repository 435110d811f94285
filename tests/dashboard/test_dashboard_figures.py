"""The charts are pure functions: hand-made data in, the expected SVG out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pandas as pd
import pytest

from sagascope.dashboard import figures, waterfall
from sagascope.queries.formatting import format_span_duration

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "0.25 s"), (42, "42 s"), (65, "1 min 05 s"), (7380, "2 h 03 min"),
     (273600, "3 d 4 h"), (None, ""), (float("nan"), "")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert figures.format_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.00035, "350 µs"), (0.0125, "12.5 ms"), (0.25, "250.0 ms"), (1.5, "1.50 s"),
     (65, "1 min 05 s")],
)
def test_span_durations_read_in_the_unit_that_fits(seconds: float, text: str) -> None:
    """A handler's milliseconds are never ``0.00 s``; the waterfall and Where time goes agree."""
    assert format_span_duration(seconds) == text
    assert waterfall.ms_text(seconds * 1000) == text


def _flow() -> pd.DataFrame:
    rows = [
        ("m1", "", "orders", "OrderPlaced", "event", "", ""),
        ("m2", "m1", "orchestrator", "RetrievePayment", "command", "", ""),
        ("m3", "m2", "payment", "PaymentReceived", "event", "", ""),
        ("m4", "m3", "orchestrator", "RefundPayment", "command", "payment", ""),
        ("m5", "m4", "payment", "PaymentRefunded", "event", "payment", "compensated"),
    ]
    return pd.DataFrame([
        {"seq": i + 1, "event_time": T0 + timedelta(seconds=i), "message_id": mid,
         "causation_id": cause, "source": source, "type": type_, "kind": kind,
         "compensates": comp, "saga_status": status, "step": "", "duplicate": False}
        for i, (mid, cause, source, type_, kind, comp, status) in enumerate(rows)
    ])


def _svg(markup: str) -> ElementTree.Element:
    return ElementTree.fromstring(markup)


def _texts(root: ElementTree.Element, cls: str = "") -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if not cls or t.get("class") == cls]


def _messages(root: ElementTree.Element, kind: str) -> list[ElementTree.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("data-kind") == kind]


def _label(message: ElementTree.Element) -> str:
    return next(message.iter(f"{SVG}text")).text or ""


def test_swimlane_one_lane_per_service_in_order_of_appearance() -> None:
    root = _svg(figures.swimlane(_flow()))
    assert _texts(root, "lane") == ["orders", "orchestrator", "payment"]


def test_swimlane_draws_an_arrow_from_each_cause_to_its_consequence() -> None:
    root = _svg(figures.swimlane(_flow()))
    arrows = [line.get("data-lanes") for line in root.iter(f"{SVG}line")
              if line.get("class") == "cause"]
    # lanes: orders 0, orchestrator 1, payment 2; m1->m2->m3->m4->m5
    assert arrows == ["0,1", "1,2", "2,1", "1,2"]


def test_swimlane_marks_compensations() -> None:
    root = _svg(figures.swimlane(_flow()))
    compensations = _messages(root, "compensation")
    assert [_label(g) for g in compensations] == ["RefundPayment", "PaymentRefunded"]
    assert all(g.find(f"{SVG}path") is not None for g in compensations)  # drawn as a cross
    assert [_label(g) for g in _messages(root, "command")] == ["RetrievePayment"]


def _x(message: ElementTree.Element) -> float:
    return float(next(message.iter(f"{SVG}text")).get("x", "nan"))


def test_swimlane_draws_a_skewed_message_after_its_cause_and_marks_it() -> None:
    flow = _flow()
    # PaymentReceived's clock runs 30 s behind: its event time precedes its cause.
    flow.loc[2, "event_time"] = T0 - timedelta(seconds=28)
    flow["position"] = flow["event_time"]
    flow.loc[2, "position"] = T0 + timedelta(seconds=1.5)
    flow["skew_s"] = [0.0, 0.0, 29.0, 0.0, 0.0]
    root = _svg(figures.swimlane(flow, now=T0 + timedelta(seconds=10)))
    events = {_label(g): g for g in _messages(root, "event")}
    skewed = events["⚠ PaymentReceived (skewed)"]
    cause = _messages(root, "command")[0]
    assert _x(events["OrderPlaced"]) < _x(cause) < _x(skewed)
    assert _texts(root, "now") == ["now"]
    long_silence = _svg(figures.swimlane(flow, now=T0 + timedelta(hours=1)))
    assert _texts(long_silence, "now")[0].startswith("now: silent for 59 min")


def test_swimlane_tells_each_message_on_hover() -> None:
    root = _svg(figures.swimlane(_flow()))
    hover = _messages(root, "compensation")[1].find(f"{SVG}title")
    assert hover is not None and hover.text is not None
    assert hover.text.startswith("PaymentRefunded (event)")
    assert "compensates: payment" in hover.text


def test_an_empty_swimlane_says_why() -> None:
    root = _svg(figures.swimlane(pd.DataFrame()))
    assert _texts(root) == ["No messages"]
