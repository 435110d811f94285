"""The dashboard's charts: pure functions, data in, Plotly figure out.

Each function takes plain data (a mapping or a pandas DataFrame with the columns its docstring
names), never a store or a query object, so each chart is testable with hand-made rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from sagascope.queries.formatting import format_duration

#: One colour per saga status, used by every chart and badge.
STATUS_COLORS: dict[str, str] = {
    "running": "#4c6ef5",
    "completed": "#2f9e44",
    "failed": "#e03131",
    "compensating": "#f08c00",
    "compensated": "#ae3ec9",
    "stalled": "#868e96",
}
STATUS_ORDER: tuple[str, ...] = tuple(STATUS_COLORS)
_KIND_SYMBOLS = {"command": "square", "event": "circle"}
_FONT = "Inter, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"


def _base(fig: go.Figure, *, height: int = 320, title: str = "") -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 10, "r": 10, "t": 44 if title else 10, "b": 10},
        font={"family": _FONT, "size": 13},
        title={"text": title, "x": 0, "font": {"size": 15}} if title else None,
        # Legends go under the plot, so they never cover the title.
        legend={"orientation": "h", "yanchor": "top", "y": -0.24, "x": 0, "title": None},
        hoverlabel={"font": {"family": _FONT}},
    )
    return fig


def style_figure(fig: go.Figure, *, height: int = 320, title: str = "") -> go.Figure:
    """The house layout (font, margins, legend under the plot) for a page's own figure."""
    return _base(fig, height=height, title=title)


def empty_figure(message: str, *, height: int = 240) -> go.Figure:
    """A blank chart that says why it is blank."""
    fig = go.Figure()
    fig.add_annotation(
        text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
        font={"size": 14, "color": "#868e96"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _base(fig, height=height)


def swimlane(messages: pd.DataFrame, now: Any = None,
             silent_s: float | None = None) -> go.Figure:
    """The flow of one saga: one lane per service, one marker per message, an arrow from each
    message to the messages it caused, compensations marked.

    Columns: ``seq`` (causal order), ``event_time``, ``source``, ``type``, ``kind``,
    ``message_id``, ``causation_id``, and optionally ``position`` (where to draw it: a time that
    respects causality, else ``event_time``), ``skew_s`` (> 0: its clock put it before its
    cause; marked), ``step``, ``saga_status``, ``compensates``, ``duplicate``. ``now``: a time
    to mark with a vertical "now" line (an unfinished saga's silence up to it); ``silent_s``:
    the silence to print (the query layer's, measured on Kafka time), else now minus the last
    message.
    """
    if messages.empty:
        return empty_figure("No messages")
    frame = messages.copy()
    if "position" not in frame:
        frame["position"] = frame["event_time"]
    skew = frame.get("skew_s", pd.Series([0.0] * len(frame), index=frame.index)).fillna(0.0)
    frame["skewed"] = skew > 0
    frame["source"] = frame["source"].fillna("").replace("", "(unknown)")
    lanes = list(dict.fromkeys(frame.sort_values("seq")["source"]))
    lane_of = {name: i for i, name in enumerate(lanes)}
    frame["lane"] = frame["source"].map(lane_of)
    compensates = frame.get("compensates", pd.Series([""] * len(frame), index=frame.index))
    frame["is_compensation"] = compensates.fillna("").astype(str) != ""
    status = frame.get("saga_status", pd.Series([""] * len(frame), index=frame.index)).fillna("")

    fig = go.Figure()
    _cause_arrows(fig, frame)
    _message_markers(fig, frame, status)
    fig.update_yaxes(
        tickmode="array", tickvals=list(range(len(lanes))), ticktext=lanes,
        range=[len(lanes) - 0.4, -0.6], showgrid=True, gridcolor="#e9ecef", zeroline=False,
        title_text="",
    )
    if now is not None:
        _mark_now(fig, frame, now, silent_s)
    fig.update_xaxes(title_text="event time (a consequence never drawn before its cause)",
                     showgrid=False)
    return _base(fig, height=140 + 70 * len(lanes), title="Swimlane")


def _cause_arrows(fig: go.Figure, frame: pd.DataFrame) -> None:
    """An arrow from each message to every message it caused."""
    position = {
        str(mid): (t, lane)
        for mid, t, lane in zip(frame["message_id"], frame["position"], frame["lane"],
                                strict=True)
        if mid
    }
    for cause, mid in zip(frame["causation_id"], frame["message_id"], strict=True):
        if cause and str(cause) in position and str(mid) in position:
            (x0, y0), (x1, y1) = position[str(cause)], position[str(mid)]
            fig.add_annotation(
                x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
                showarrow=True, arrowhead=2, arrowsize=1.1, arrowwidth=1.3,
                arrowcolor="#adb5bd", standoff=7, startstandoff=7, text="",
            )


def _marker_color(row_status: str, is_comp: bool, kind: str) -> str:
    if row_status in STATUS_COLORS:
        return STATUS_COLORS[row_status]
    if is_comp:
        return STATUS_COLORS["compensating"]
    return "#3b5bdb" if kind == "command" else "#1098ad"


def _message_markers(fig: go.Figure, frame: pd.DataFrame, status: pd.Series) -> None:
    """One trace per kind (command, event, compensation), skewed messages labelled."""
    groups = [
        ("command", (frame["kind"] == "command") & ~frame["is_compensation"]),
        ("event", (frame["kind"] != "command") & ~frame["is_compensation"]),
        ("compensation", frame["is_compensation"]),
    ]
    for name, mask in groups:
        part = frame[mask]
        if part.empty:
            continue
        symbol = "x" if name == "compensation" else _KIND_SYMBOLS.get(name, "circle")
        colors = [
            _marker_color(str(s), bool(c), str(k))
            for s, c, k in zip(status[mask], part["is_compensation"], part["kind"], strict=True)
        ]
        hover = [
            _message_hover(row) for row in part.to_dict("records")
        ]
        fig.add_trace(
            go.Scatter(
                x=part["position"], y=part["lane"], mode="markers+text", name=name,
                text=[f"⚠ {t} (skewed)" if sk else str(t)
                      for t, sk in zip(part["type"], part["skewed"], strict=True)],
                textposition="top center",
                textfont={"size": 11},
                marker={"symbol": symbol, "size": 13, "color": colors,
                        "line": {"width": 1, "color": "white"}},
                hovertext=hover, hoverinfo="text",
            )
        )


def _mark_now(fig: go.Figure, frame: pd.DataFrame, now: Any, silent_s: float | None) -> None:
    """A dashed "now" line; when the silence dwarfs the flow, an arrow at the right edge
    saying how much later now is, so the messages are not squashed to the left."""
    first, last = pd.Timestamp(frame["position"].min()), pd.Timestamp(frame["position"].max())
    moment = pd.Timestamp(now)
    if moment.tzinfo is None and last.tzinfo is not None:
        moment = moment.tz_localize(last.tzinfo)
    silence_s = max((moment - last).total_seconds(), 0.0)
    span_s = max((last - first).total_seconds(), 1.0)
    color = STATUS_COLORS["stalled"]
    if silence_s <= 3 * span_s:
        fig.add_shape(type="line", x0=moment, x1=moment, y0=0, y1=1, xref="x", yref="paper",
                      line={"color": color, "width": 2, "dash": "dash"})
        fig.add_annotation(x=moment, y=1, xref="x", yref="paper", text="now", showarrow=False,
                           yanchor="bottom", font={"color": color})
        return
    shown_s = silent_s if silent_s is not None else silence_s
    fig.add_annotation(x=1, y=1, xref="paper", yref="paper", xanchor="right", yanchor="bottom",
                       showarrow=False, font={"color": color},
                       text=f"now: silent for {format_duration(shown_s)} →")


def _message_hover(row: Mapping[str, Any]) -> str:
    parts = [f"<b>{row.get('type', '')}</b> ({row.get('kind', '')})",
             f"#{row.get('seq', '')} at {row.get('event_time')}"]
    if row.get("skew_s"):
        parts.append(f"clock skew: event time {row['skew_s']:.3f} s before its cause")
    for key in ("step", "saga_status", "compensates"):
        if row.get(key):
            parts.append(f"{key}: {row[key]}")
    if row.get("duplicate"):
        parts.append("duplicate delivery")
    return "<br>".join(parts)


def _dot_text(text: object) -> str:
    """A DOT quoted string."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def process_map_dot(
    nodes: pd.DataFrame,
    edges: pd.DataFrame,
    *,
    overlay: str = "frequency",
    live: Mapping[str, Mapping[str, int]] | None = None,
    node_link: Any = None,
    edge_link: Any = None,
) -> str:
    """The directly-follows graph as Graphviz DOT, laid out top to bottom by ``dot``.

    ``nodes``: ``activity``, ``count``, ``starts``, ``ends``; ``edges``: ``source``,
    ``target``, ``count``, ``median_s``, ``p95_s``. ``overlay``: ``frequency`` (counts on the
    arrows) or ``duration`` (median and p95); ``sagas`` (when given) is what a node's or an
    arrow's link opens, and the label says it. ``live``: activity -> {"running": n,
    "compensating": n, "stalled": n} drawn on the node (running and compensating as
    waiting). ``node_link(activity)`` and ``edge_link(a, b)`` give each node and arrow a URL
    (clickable in the browser).
    """
    live = live or {}
    lines = [
        "digraph process {",
        '  rankdir=TB; nodesep=0.35; ranksep=0.45; bgcolor="transparent";',
        '  node [shape=box, style="rounded,filled", fillcolor="#edf2ff", color="#3b5bdb", '
        'fontname="Helvetica", fontsize=11, margin="0.15,0.06"];',
        '  edge [fontname="Helvetica", fontsize=10, color="#5c7cfa", fontcolor="#343a40", '
        'arrowsize=0.7];',
        '  "__start" [shape=circle, label="", width=0.22, style=filled, fillcolor="#2f9e44", '
        'color="#2f9e44"];',
        '  "__end" [shape=doublecircle, label="", width=0.18, style=filled, '
        'fillcolor="#343a40", color="#343a40"];',
    ]
    top = max(float(edges["count"].max()) if not edges.empty else 1.0,
              float(nodes["starts"].max()) if not nodes.empty else 1.0, 1.0)
    for row in nodes.to_dict("records"):
        name = str(row["activity"])
        # Labelled with what its link opens (the sagas through it), and how often it ran.
        times, sagas = int(row["count"]), int(row.get("sagas", row["count"]))
        label = f"{name}\n{sagas:,} sagas" + (f" · {times:,} times" if times != sagas else "")
        counts = live.get(name, {})
        waiting = int(counts.get("running", 0)) + int(counts.get("compensating", 0))
        stalled = int(counts.get("stalled", 0))
        extra = ""
        if waiting or stalled:
            label += f"\n{waiting} waiting · {stalled} stalled"
            if stalled:
                extra = ', fillcolor="#fff4e6", color="#f08c00", penwidth=2'
        link = f", URL={_dot_text(node_link(name))}, target=\"_self\"" if node_link else ""
        lines.append(f"  {_dot_text(name)} [label={_dot_text(label)}, "
                     f"tooltip={_dot_text('open the sagas that passed through ' + name)}"
                     f"{link}{extra}];")
        if int(row.get("starts", 0)):
            lines.append(f"  \"__start\" -> {_dot_text(name)} [label={_dot_text(int(row['starts']))}, "
                         'style=dashed, color="#adb5bd"];')
        if int(row.get("ends", 0)):
            lines.append(f"  {_dot_text(name)} -> \"__end\" [label={_dot_text(int(row['ends']))}, "
                         'style=dashed, color="#adb5bd"];')
    for row in edges.to_dict("records"):
        a, b = str(row["source"]), str(row["target"])
        if overlay == "duration":
            label = (f"{format_duration(row.get('median_s')) or '0 s'} · "
                     f"p95 {format_duration(row.get('p95_s')) or '0 s'}")
        else:
            times, sagas = int(row["count"]), int(row.get("sagas", row["count"]))
            label = f"{sagas:,}" if times == sagas else f"{sagas:,} sagas · {times:,} times"
        width = 1 + 4 * float(row["count"]) / top
        link = f", URL={_dot_text(edge_link(a, b))}, target=\"_self\"" if edge_link else ""
        lines.append(f"  {_dot_text(a)} -> {_dot_text(b)} [label={_dot_text(' ' + label)}, "
                     f"penwidth={width:.2f}, tooltip={_dot_text(f'{a} → {b}')}{link}];")
    lines.append("}")
    return "\n".join(lines)
