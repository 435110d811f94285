"""A trace as a waterfall: each span a bar at its time, under the span that caused it, and
each message's wait in Kafka (from its PRODUCER span's end to its handler's start) beside
the handling. Pure functions, data in, SVG out (:mod:`svg`: no chart script for the
browser to load).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from sagascope.dashboard import svg
from sagascope.dashboard.figures import STATUS_COLORS
from sagascope.queries.formatting import format_span_duration

#: Spans drawn at most; a longer trace says how many are left out.
MAX_SPANS = 150
#: Colours: sending, handling, waiting in Kafka, failed.
COLORS = {"PRODUCER": "#74c0fc", "CONSUMER": "#3b5bdb", "wait": "#f08c00",
          "error": STATUS_COLORS["failed"], "other": "#868e96"}


def waterfall_frame(spans: Sequence[Any]) -> pd.DataFrame:
    """One row per span in tree order (a child under its parent, siblings by start).

    ``spans``: objects with ``trace_id, span_id, parent_span_id, name, kind, service, start,
    end, status_code, status_message, message_id`` (:class:`sagascope.queries.TraceSpan`).
    Columns: those, plus ``depth``, ``start_ms`` and ``duration_ms`` (from the trace's first
    span), ``wait_ms`` (a handler's wait in Kafka since its producer span ended, else NaN),
    ``failed``.
    """
    if not spans:
        return pd.DataFrame()
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[Any]] = {}
    roots = []
    for span in sorted(spans, key=lambda s: (s.start, s.span_id)):
        parent = span.parent_span_id
        if parent and parent in by_id and parent != span.span_id:
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)
    origin = min(s.start for s in spans)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    stack = [(root, 0) for root in reversed(roots)]
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:  # a cycle in bad data: draw each span once
            continue
        seen.add(span.span_id)
        parent = by_id.get(span.parent_span_id)
        wait_ms = float("nan")
        if span.kind == "CONSUMER" and parent is not None and parent.kind == "PRODUCER":
            wait_ms = max((span.start - parent.end).total_seconds() * 1000, 0.0)
        rows.append({
            "trace_id": span.trace_id, "span_id": span.span_id,
            "parent_span_id": span.parent_span_id, "name": span.name, "kind": span.kind,
            "service": span.service, "start": span.start, "end": span.end,
            "status_code": span.status_code, "status_message": span.status_message,
            "message_id": span.message_id, "depth": depth,
            "start_ms": (span.start - origin).total_seconds() * 1000,
            "duration_ms": max((span.end - span.start).total_seconds() * 1000, 0.0),
            "wait_ms": wait_ms,
            "failed": span.status_code.upper() == "ERROR",
        })
        stack.extend((child, depth + 1) for child in reversed(children.get(span.span_id, [])))
    return pd.DataFrame(rows)


def ms_text(value: float) -> str:
    """A duration given in milliseconds (the spans' unit), as every page writes a span's."""
    return format_span_duration(value / 1000)


def trace_waterfall(frame: pd.DataFrame, *, title: str = "Trace") -> str:
    """The waterfall of :func:`waterfall_frame`'s rows (at most :data:`MAX_SPANS`), as SVG.

    Left, *when*: each span a bar at its time since the trace began (a tick marks spans too
    short to see at that scale), a handler's wait in Kafka drawn before it. Right, *how long*,
    on its own scale: each handler's wait in Kafka and its handling, stacked; each send's
    duration, printed. Failed spans are red and marked ⚠. Hovering a bar tells it all.
    """
    if frame.empty:
        return svg.empty("No spans stored for this trace")
    rows = frame.head(MAX_SPANS).reset_index(drop=True)
    top = 78
    height = top + _ROW * len(rows) + 44
    end_ms = float((rows["start_ms"] + rows["duration_ms"]).max()) or 1.0
    when = svg.Scale(0.0, end_ms, _WHEN[0], _WHEN[1])
    longest = float((rows["wait_ms"].fillna(0) + rows["duration_ms"]).max()) or 1.0
    how_long = svg.Scale(0.0, longest * 1.25, _HOW_LONG[0], _HOW_LONG[1])
    parts = [svg.text(0, 18, title, size=15, weight="600"), *_legend(),
             svg.text(_WHEN[0], top - 8, "when (since the trace's first span)", size=12,
                      color=svg.MUTED),
             svg.text(_HOW_LONG[0], top - 8, "how long: waiting in Kafka, then handling",
                      size=12, color=svg.MUTED)]
    bottom = top + _ROW * len(rows)
    for value in when.ticks():
        x = when(value)
        parts += [svg.line(x, top, x, bottom),
                  svg.text(x, bottom + 16, ms_text(value) if value else "0", size=11, color=svg.MUTED,
                           anchor="middle")]
    parts.append(svg.line(_HOW_LONG[0], top, _HOW_LONG[0], bottom))
    for i, row in enumerate(rows.to_dict("records")):
        parts += _span_row(row, top + i * _ROW, when, how_long)
    return svg.document(_WIDTH, height, parts, label=title)


#: Layout, in the SVG's own pixels: the whole width, each row's height, and where the span
#: labels, the *when* and the *how long* panels sit.
_WIDTH = 960
_ROW = 24
#: A label's characters are about 6.2 px wide at its 12 px font.
_CHAR_PX = 6.2
_WHEN = (300.0, 690.0)
_HOW_LONG = (715.0, 880.0)


def _legend() -> list[str]:
    parts = []
    x = _WHEN[0]
    for name, color in (("handling (consumer span)", COLORS["CONSUMER"]),
                        ("sending (producer span)", COLORS["PRODUCER"]),
                        ("waiting in Kafka", COLORS["wait"]), ("failed", COLORS["error"])):
        parts += [svg.rect(x, 31, 12, 12, color), svg.text(x + 17, 41, name, size=12)]
        x += 26 + 6.5 * len(name)
    return parts


def _span_row(row: dict[str, Any], y: float, when: svg.Scale, how_long: svg.Scale) -> list[str]:
    failed = bool(row["failed"])
    color = COLORS["error"] if failed else COLORS.get(str(row["kind"]), COLORS["other"])
    service = str(row["service"] or "(unknown)")
    label = f"{'⚠ ' if failed else ''}{'↳ ' if row['depth'] else ''}{service} · {row['name']}"
    wait, duration, start = float(row["wait_ms"]), float(row["duration_ms"]), float(row["start_ms"])
    waited = wait == wait  # NaN: not a handler of a sent message
    hover = "\n".join([
        f"{service} · {row['name']}",
        f"{str(row['kind']).lower() or 'span'} {ms_text(duration)}, from {ms_text(start)}",
        *([f"waited in Kafka {ms_text(wait)}"] if waited else []),
        *([f"error: {row['status_message']}"] if failed else []),
    ])
    indent = 10 * min(int(row["depth"]), 5)
    room = int((_WHEN[0] - 8 - indent) / _CHAR_PX)
    mid = y + _ROW / 2
    parts = [svg.text(indent, mid + 4, svg.clipped(label, room), size=12,
                      color=COLORS["error"] if failed else "#343a40",
                      extra=' class="span-label"'),
             svg.line(_WHEN[0], y + _ROW, _HOW_LONG[1], y + _ROW, color="#f1f3f5")]
    bar_y, bar_h = y + 5, _ROW - 10
    if waited:
        parts.append(svg.rect(when(start - wait), bar_y, when(start) - when(start - wait),
                              bar_h, COLORS["wait"], opacity=0.5,
                              hover=f"waited in Kafka {ms_text(wait)}"))
    x0 = when(start)
    # Spans of a millisecond in a trace of seconds stay visible: at least 2 px wide.
    parts.append(svg.rect(x0, bar_y, max(when(start + duration) - x0, 2.0), bar_h, color,
                          hover=hover, extra=' class="span-bar"'))
    x = _HOW_LONG[0]
    if waited:
        width = how_long(wait) - how_long(0)
        parts.append(svg.rect(x, bar_y, width, bar_h, COLORS["wait"],
                              hover=f"waited in Kafka {ms_text(wait)}"))
        x += width
    width = max(how_long(duration) - how_long(0), 1.0)
    parts += [svg.rect(x, bar_y, width, bar_h, color, hover=hover),
              svg.text(x + width + 4, mid + 4, ms_text(duration), size=11, color=svg.MUTED,
                       extra=' class="span-duration"')]
    return parts


def trace_summary(frame: pd.DataFrame) -> dict[str, float]:
    """Totals of a waterfall: spans, handling ms, waiting-in-Kafka ms, failed spans."""
    if frame.empty:
        return {"spans": 0, "handling_ms": 0.0, "waiting_ms": 0.0, "errors": 0}
    consumers = frame[frame["kind"] == "CONSUMER"]
    return {
        "spans": len(frame),
        "handling_ms": float(consumers["duration_ms"].sum()),
        "waiting_ms": float(frame["wait_ms"].fillna(0).sum()),
        "errors": int(frame["failed"].sum()),
    }
