"""A trace as a waterfall: each span a bar at its time, under the span that caused it, and
each message's wait in Kafka (from its PRODUCER span's end to its handler's start) beside
the handling. Pure functions, data in, Plotly figure out, like :mod:`figures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sagascope.dashboard.figures import STATUS_COLORS, empty_figure, style_figure

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
    """A duration given in milliseconds, in the unit that reads best."""
    if value < 1:
        return f"{value * 1000:.0f} µs"
    if value < 1000:
        return f"{value:.1f} ms"
    if value < 60_000:
        return f"{value / 1000:.2f} s"
    return f"{value / 60_000:.1f} min"


def trace_waterfall(frame: pd.DataFrame, *, title: str = "Trace") -> go.Figure:
    """The waterfall of :func:`waterfall_frame`'s rows (at most :data:`MAX_SPANS`).

    Left, *when*: each span a bar at its time since the trace began (a tick marks spans too
    short to see at that scale). Right, *how long*, on its own scale: each handler's wait in
    Kafka and its handling, stacked; each send's duration. Failed spans are red and marked ⚠.
    """
    if frame.empty:
        return empty_figure("No spans stored for this trace")
    rows = frame.head(MAX_SPANS).reset_index(drop=True)
    labels = [
        f"{'⚠ ' if f else ''}{'↳ ' if d else ''}{s or '(unknown)'} · {n}"
        for d, f, s, n in zip(rows["depth"], rows["failed"], rows["service"], rows["name"],
                              strict=True)
    ]
    # Rows are indexed, not labelled: two spans may read the same.
    y = list(range(len(rows)))
    colors = [COLORS["error"] if f else COLORS.get(k, COLORS["other"])
              for f, k in zip(rows["failed"], rows["kind"], strict=True)]
    hover = [
        f"<b>{s}</b> · {n}<br>{k.lower() or 'span'} {ms_text(d)}"
        + (f"<br>waited in Kafka {ms_text(w)}" if w == w else "")
        + (f"<br><b>error</b> {m}" if f else "")
        for s, n, k, d, w, f, m in zip(rows["service"], rows["name"], rows["kind"],
                                       rows["duration_ms"], rows["wait_ms"], rows["failed"],
                                       rows["status_message"], strict=True)
    ]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.62, 0.38],
                        horizontal_spacing=0.03,
                        subplot_titles=("when (since the trace's first span)",
                                        "how long: waiting in Kafka, then handling"))
    waits = rows[rows["wait_ms"].notna()]
    if not waits.empty:
        fig.add_trace(go.Bar(
            y=list(waits.index), x=waits["wait_ms"], base=waits["start_ms"] - waits["wait_ms"],
            orientation="h", marker_color=COLORS["wait"], opacity=0.5, showlegend=False,
            hovertext=[f"waited in Kafka {ms_text(w)}" for w in waits["wait_ms"]],
            hoverinfo="text"), row=1, col=1)
    fig.add_trace(go.Bar(
        y=y, x=rows["duration_ms"], base=rows["start_ms"], orientation="h", showlegend=False,
        marker={"color": colors, "line": {"color": colors, "width": 1}},
        hovertext=hover, hoverinfo="text"), row=1, col=1)
    # Spans of a millisecond in a trace of seconds stay visible as a tick at their start.
    fig.add_trace(go.Scatter(
        y=y, x=rows["start_ms"], mode="markers", showlegend=False, hoverinfo="skip",
        marker={"symbol": "line-ns", "size": 12, "color": colors,
                "line": {"width": 2, "color": colors}}), row=1, col=1)
    fig.add_trace(go.Bar(
        y=list(waits.index), x=waits["wait_ms"], orientation="h", name="waiting in Kafka",
        marker_color=COLORS["wait"], hovertext=[f"waited in Kafka {ms_text(w)}"
                                                for w in waits["wait_ms"]],
        hoverinfo="text"), row=1, col=2)
    fig.add_trace(go.Bar(
        y=y, x=rows["duration_ms"], orientation="h", name="handling / sending",
        marker_color=colors, text=[ms_text(d) for d in rows["duration_ms"]],
        textposition="outside", cliponaxis=False, hovertext=hover, hoverinfo="text"),
        row=1, col=2)
    for name, color in (("handling (consumer span)", COLORS["CONSUMER"]),
                        ("sending (producer span)", COLORS["PRODUCER"]),
                        ("failed", COLORS["error"])):
        fig.add_trace(go.Bar(y=[None], x=[None], name=name, marker_color=color,
                             orientation="h"), row=1, col=2)
    fig.update_traces(selector={"name": "handling / sending"}, showlegend=False)
    fig.update_yaxes(tickmode="array", tickvals=y, ticktext=labels, autorange="reversed",
                     automargin=True, tickfont={"size": 11}, row=1, col=1)
    fig.update_xaxes(title_text="ms", rangemode="tozero", row=1, col=1)
    longest = float((rows["wait_ms"].fillna(0) + rows["duration_ms"]).max()) or 1.0
    # Room for the duration printed after the longest bar.
    fig.update_xaxes(title_text="ms", range=[0, longest * 1.3], row=1, col=2)
    fig.update_layout(barmode="stack", bargap=0.3)
    fig.update_annotations(font={"size": 12, "color": "#5c6370"})
    return style_figure(fig, height=140 + 24 * len(rows), title=title)


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
