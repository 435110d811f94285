"""The charts are pure functions: hand-made data in, the expected SVG out; the trace
waterfall likewise, spans in, rows and an SVG out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pandas as pd

from sagascope.dashboard import charts, figures, waterfall
from sagascope.dashboard.figures import STATUS_COLORS
from sagascope.queries import TraceSpan

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def _svg(drawn: str) -> ElementTree.Element:
    return ElementTree.fromstring(drawn)


def _texts(root: ElementTree.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_status_bars_in_canonical_order_without_zeros_and_open_their_sagas() -> None:
    root = _svg(charts.status_bars({"failed": 2, "completed": 7, "running": 0, "weird": 1},
                                   link=lambda status: f"sagas?status={status}"))
    bars = [(a.get("href"), a.find(f"{SVG}text").text, a.find(f"{SVG}rect").get("fill"))
            for a in root.iter(f"{SVG}a")]
    assert bars == [("sagas?status=completed", "completed", STATUS_COLORS["completed"]),
                    ("sagas?status=failed", "failed", STATUS_COLORS["failed"]),
                    ("sagas?status=weird", "weird", "#495057")]


def test_status_bars_without_sagas_says_so() -> None:
    assert _texts(_svg(charts.status_bars({"running": 0}, link=str))) == [
        "No sagas in this range"]


def test_throughput_draws_empty_buckets_as_zero_not_the_previous_value() -> None:
    frame = pd.DataFrame({"bucket": [T0, T0 + timedelta(minutes=3)],
                          "sagas_started": [3, 4], "sagas_finished": [1, 5]})
    full = charts.zero_filled(frame, ["sagas_started", "sagas_finished"], 60, None,
                              T0 + timedelta(minutes=3, seconds=10))
    assert list(full["sagas_started"]) == [3, 0, 0, 4]
    root = _svg(charts.throughput_bars(frame, 60, None, T0 + timedelta(minutes=4), "1 min"))
    hovers = [t.text for t in root.iter(f"{SVG}title")]
    assert "2026-01-01 12:01:00 UTC: 0 started, 0 finished" in hovers
    assert "2026-01-01 12:03:00 UTC: 4 started, 5 finished" in hovers


def test_throughput_marks_the_last_bucket_while_it_fills() -> None:
    frame = pd.DataFrame({"bucket": [T0], "sagas_started": [3], "sagas_finished": [1]})

    def shaded(root: ElementTree.Element) -> list[ElementTree.Element]:
        return [r for r in root.iter(f"{SVG}rect") if r.get("class") == "filling"]

    filling = _svg(charts.throughput_bars(frame, 60, T0, T0 + timedelta(seconds=30), "1 min"))
    assert "still filling" in _texts(filling)[0] and len(shaded(filling)) == 1
    done = _svg(charts.throughput_bars(frame, 60, T0, T0 + timedelta(seconds=60), "1 min"))
    assert "still filling" not in _texts(done)[0] and not shaded(done)


def test_cycle_times_one_small_chart_per_type_for_the_chosen_percentile() -> None:
    frame = pd.DataFrame({
        "bucket": [T0, T0, T0 + timedelta(hours=1)], "saga_type": ["order", "trip", "order"],
        "count": [1, 2, 3], "p50_s": [1.0, 2.0, 3.0], "p95_s": [4.0, 5.0, 6.0],
    })
    root = _svg(charts.cycle_time_multiples(frame, "p95_s", 3600, None,
                                            T0 + timedelta(hours=2), "1 h"))
    assert "p95" in _texts(root)[0]
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "panel"] == [
        "order", "trip"]
    hovers = [c.find(f"{SVG}title").text for c in root.iter(f"{SVG}circle")]
    assert hovers == ["2026-01-01 12:00:00 UTC: p95 4.00 s (1 finished)",
                      "2026-01-01 13:00:00 UTC: p95 6.00 s (3 finished)",
                      "2026-01-01 12:00:00 UTC: p95 5.00 s (2 finished)"]


def test_cycle_times_leave_a_gap_where_no_saga_finished() -> None:
    frame = pd.DataFrame({"bucket": [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=3)],
                          "saga_type": ["order"] * 3, "count": [1, 1, 1],
                          "p95_s": [4.0, 5.0, 6.0]})
    root = _svg(charts.cycle_time_multiples(frame, "p95_s", 3600, None,
                                            T0 + timedelta(hours=4), "1 h"))
    lines = [p.get("points").split() for p in root.iter(f"{SVG}polyline")]
    assert [len(points) for points in lines] == [2, 1]


def test_count_bars_sums_by_label_largest_first_and_counts_what_is_left_out() -> None:
    frame = pd.DataFrame({"step": ["pay", "ship", "pay", "pack"], "count": [1, 3, 4, 1]})
    drawn, total = figures.count_bars(frame, "step", top=2, link=lambda step: f"sagas?at={step}")
    root = ElementTree.fromstring(drawn)
    bars = [(a.get("href"), [t.text for t in a.iter(f"{SVG}text")])
            for a in root.iter(f"{SVG}a")]
    assert bars == [("sagas?at=pay", ["pay", "5"]), ("sagas?at=ship", ["ship", "3"])]
    assert total == 3


def test_variant_bars_most_frequent_first_with_the_path_on_hover() -> None:
    variants = pd.DataFrame({"activities": [("A", "C"), ("A", "B", "C")], "count": [2, 9]})
    root = _svg(charts.variant_bars(variants))
    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "bar-label"]
    assert labels == ["V1", "V2"]
    assert [t.text for t in root.iter(f"{SVG}title")] == ["V1: 9 sagas\nA → B → C",
                                                         "V2: 2 sagas\nA → C"]
    assert _texts(_svg(charts.variant_bars(pd.DataFrame()))) == ["No variants in this range"]


def _span(span_id: str, parent: str, kind: str, start_ms: int, end_ms: int,
          status: str = "UNSET") -> TraceSpan:
    return TraceSpan(trace_id="t", span_id=span_id, parent_span_id=parent, name=span_id,
                     kind=kind, service=f"svc-{span_id}", start=T0 + timedelta(milliseconds=start_ms),
                     end=T0 + timedelta(milliseconds=end_ms), status_code=status,
                     status_message="", message_id="")


def test_waterfall_rows_in_tree_order_with_the_wait_in_kafka() -> None:
    spans = [_span("send2", "handle1", "PRODUCER", 40, 41),
             _span("send1", "", "PRODUCER", 0, 1),
             _span("handle1", "send1", "CONSUMER", 21, 30, status="ERROR")]
    rows = waterfall.waterfall_frame(spans)
    assert list(rows["span_id"]) == ["send1", "handle1", "send2"]
    assert list(rows["depth"]) == [0, 1, 2]
    assert rows["wait_ms"].iloc[1] == 20.0
    assert list(rows["failed"]) == [False, True, False]
    totals = waterfall.trace_summary(rows)
    assert totals["handling_ms"] == 9.0 and totals["waiting_ms"] == 20.0 and totals["errors"] == 1


def test_waterfall_figure_labels_each_span_and_marks_failures() -> None:
    spans = [_span("send1", "", "PRODUCER", 0, 1),
             _span("handle1", "send1", "CONSUMER", 21, 30, status="ERROR")]
    root = ElementTree.fromstring(waterfall.trace_waterfall(waterfall.waterfall_frame(spans)))
    texts = list(root.iter("{http://www.w3.org/2000/svg}text"))
    labels = [t.text for t in texts if t.get("class") == "span-label"]
    assert labels == ["svc-send1 · send1", "⚠ ↳ svc-handle1 · handle1"]
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "span-bar"]
    assert bars[1].get("fill") == waterfall.COLORS["error"]
    assert [t.text for t in texts if t.get("class") == "span-duration"] == ["1.0 ms", "9.0 ms"]
