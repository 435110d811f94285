"""The dashboard's charts: pure functions, data in, Plotly figure out.

Each function takes plain data (a mapping or a pandas DataFrame with the columns its docstring
names), never a store or a query object, so each chart is testable with hand-made rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def status_bars(counts: Mapping[str, int]) -> go.Figure:
    """Sagas by status, one bar per status present, in the canonical order (others after)."""
    present = {s for s, n in counts.items() if n}
    statuses = [s for s in STATUS_ORDER if s in present] + sorted(present - set(STATUS_ORDER))
    if not statuses or sum(counts.values()) == 0:
        return empty_figure("No sagas in this range")
    values = [int(counts[s]) for s in statuses]
    fig = go.Figure(
        go.Bar(
            x=values, y=statuses, orientation="h", text=values, textposition="auto",
            marker_color=[STATUS_COLORS.get(s, "#495057") for s in statuses],
            hovertemplate="%{y}: %{x}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _base(fig, height=80 + 36 * len(statuses), title="Sagas by status")


def throughput_lines(frame: pd.DataFrame) -> go.Figure:
    """Sagas started and finished per bucket: columns ``bucket`` and any of
    ``sagas_started``, ``sagas_finished``, ``sagas_failed``."""
    if frame.empty:
        return empty_figure("No traffic in this range")
    fig = go.Figure()
    styles = {"started": "#4c6ef5", "finished": "#2f9e44", "failed": "#e03131"}
    for name, color in styles.items():
        column = f"sagas_{name}"
        if column in frame:
            fig.add_trace(
                go.Scatter(
                    x=frame["bucket"], y=frame[column], name=name, mode="lines",
                    line={"color": color, "width": 2, "shape": "hv"},
                )
            )
    fig.update_yaxes(title_text="sagas per bucket", rangemode="tozero")
    return _base(fig, title="Started / finished")


def cycle_time_lines(frame: pd.DataFrame) -> go.Figure:
    """Cycle-time percentiles over time: columns ``bucket``, ``saga_type``, ``p50_s``,
    ``p95_s``, ``p99_s`` (seconds); one colour per saga type, dash per percentile."""
    if frame.empty:
        return empty_figure("No finished sagas in this range")
    palette = ["#3b5bdb", "#2f9e44", "#f08c00", "#ae3ec9", "#1098ad", "#e8590c", "#5c940d"]
    dashes = {"p50_s": "solid", "p95_s": "dash", "p99_s": "dot"}
    fig = go.Figure()
    for i, (saga_type, rows) in enumerate(frame.groupby("saga_type", sort=True)):
        color = palette[i % len(palette)]
        for column, dash in dashes.items():
            if column not in rows:
                continue
            fig.add_trace(
                go.Scatter(
                    x=rows["bucket"], y=rows[column], mode="lines+markers",
                    name=f"{saga_type} {column[:3]}", legendgroup=str(saga_type),
                    line={"color": color, "dash": dash, "width": 2 if column == "p50_s" else 1.5},
                    marker={"size": 4},
                    customdata=[format_duration(v) for v in rows[column]],
                    hovertemplate=f"{saga_type} {column[:3]}: %{{customdata}}<extra></extra>",
                )
            )
    fig.update_yaxes(title_text="cycle time (s)", rangemode="tozero")
    return _base(fig, height=360, title="Cycle time p50 / p95 / p99")


def count_bars(frame: pd.DataFrame, label: str, value: str = "count", *, title: str = "",
               color: str = "#e03131", top: int = 15) -> go.Figure:
    """Horizontal bars of ``value`` by ``label``, largest first, at most ``top`` bars."""
    if frame.empty:
        return empty_figure("Nothing to show")
    rows = frame.groupby(label, as_index=False)[value].sum().nlargest(top, value)
    fig = go.Figure(
        go.Bar(
            x=rows[value], y=rows[label].astype(str), orientation="h", text=rows[value],
            textposition="auto", marker_color=color,
            hovertemplate="%{y}: %{x}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", automargin=True)
    if float(rows[value].max()) <= 10:
        fig.update_xaxes(dtick=1)
    return _base(fig, height=80 + 30 * len(rows), title=title)


def swimlane(messages: pd.DataFrame) -> go.Figure:
    """The flow of one saga: one lane per service, one marker per message, an arrow from each
    message to the messages it caused, compensations marked.

    Columns: ``seq`` (causal order), ``event_time``, ``source``, ``type``, ``kind``,
    ``message_id``, ``causation_id``, and optionally ``step``, ``saga_status``, ``compensates``,
    ``duplicate``.
    """
    if messages.empty:
        return empty_figure("No messages")
    frame = messages.copy()
    frame["source"] = frame["source"].fillna("").replace("", "(unknown)")
    lanes = list(dict.fromkeys(frame.sort_values("seq")["source"]))
    lane_of = {name: i for i, name in enumerate(lanes)}
    frame["lane"] = frame["source"].map(lane_of)
    compensates = frame.get("compensates", pd.Series([""] * len(frame), index=frame.index))
    frame["is_compensation"] = compensates.fillna("").astype(str) != ""
    status = frame.get("saga_status", pd.Series([""] * len(frame), index=frame.index)).fillna("")

    fig = go.Figure()
    position = {
        str(mid): (t, lane)
        for mid, t, lane in zip(frame["message_id"], frame["event_time"], frame["lane"],
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

    def color_of(row_status: str, is_comp: bool, kind: str) -> str:
        if row_status in STATUS_COLORS:
            return STATUS_COLORS[row_status]
        if is_comp:
            return STATUS_COLORS["compensating"]
        return "#3b5bdb" if kind == "command" else "#1098ad"

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
            color_of(str(s), bool(c), str(k))
            for s, c, k in zip(status[mask], part["is_compensation"], part["kind"], strict=True)
        ]
        hover = [
            _message_hover(row) for row in part.to_dict("records")
        ]
        fig.add_trace(
            go.Scatter(
                x=part["event_time"], y=part["lane"], mode="markers+text", name=name,
                text=[str(t) for t in part["type"]], textposition="top center",
                textfont={"size": 11},
                marker={"symbol": symbol, "size": 13, "color": colors,
                        "line": {"width": 1, "color": "white"}},
                hovertext=hover, hoverinfo="text",
            )
        )
    fig.update_yaxes(
        tickmode="array", tickvals=list(range(len(lanes))), ticktext=lanes,
        range=[len(lanes) - 0.4, -0.6], showgrid=True, gridcolor="#e9ecef", zeroline=False,
        title_text="",
    )
    fig.update_xaxes(title_text="event time", showgrid=False)
    return _base(fig, height=140 + 70 * len(lanes), title="Swimlane")


def _message_hover(row: Mapping[str, Any]) -> str:
    parts = [f"<b>{row.get('type', '')}</b> ({row.get('kind', '')})",
             f"#{row.get('seq', '')} at {row.get('event_time')}"]
    for key in ("step", "saga_status", "compensates"):
        if row.get(key):
            parts.append(f"{key}: {row[key]}")
    if row.get("duplicate"):
        parts.append("duplicate delivery")
    return "<br>".join(parts)


def layered_positions(edges: Sequence[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """Top-to-bottom positions ``(x, y)`` for a directly-follows graph: a node's row ``y`` is
    its shortest distance from a start node (one with no incoming edge); the nodes of a row
    spread along ``x`` around 0."""
    nodes = list(dict.fromkeys([n for edge in edges for n in edge]))
    incoming = dict.fromkeys(nodes, 0)
    outgoing: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        if a != b:
            incoming[b] += 1
            outgoing[a].append(b)
    starts = [n for n in nodes if incoming[n] == 0] or nodes[:1]
    depth: dict[str, int] = dict.fromkeys(starts, 0)
    queue = list(starts)
    while queue:
        node = queue.pop(0)
        for nxt in outgoing[node]:
            if nxt not in depth:
                depth[nxt] = depth[node] + 1
                queue.append(nxt)
    for n in nodes:  # only reachable through a cycle that no start leads into
        depth.setdefault(n, max(depth.values(), default=0) + 1)
    rows: dict[int, list[str]] = {}
    for n in nodes:
        rows.setdefault(depth[n], []).append(n)
    positions: dict[str, tuple[float, float]] = {}
    for row, members in rows.items():
        for i, n in enumerate(members):
            positions[n] = (i - (len(members) - 1) / 2, float(row))
    return positions


def process_map(edges: pd.DataFrame) -> go.Figure:
    """Directly-follows graph, top to bottom: columns ``source``, ``target``, ``count`` and
    optionally ``median_s`` (median transition time). Edge width follows the count."""
    if edges.empty:
        return empty_figure("No transitions in this range")
    pairs = list(zip(edges["source"].astype(str), edges["target"].astype(str), strict=True))
    pos = layered_positions(pairs)
    max_count = max(float(edges["count"].max()), 1.0)
    fig = go.Figure()
    label_x, label_y, label_text = [], [], []
    for row in edges.to_dict("records"):
        a, b = str(row["source"]), str(row["target"])
        (x0, y0), (x1, y1) = pos[a], pos[b]
        share = float(row["count"]) / max_count
        duration = format_duration(row.get("median_s"))
        text = f"{int(row['count'])}" + (f" · {duration}" if duration else "")
        if a == b:
            label_x.append(x0 + 0.18)
            label_y.append(y0 + 0.3)
            label_text.append(f"↻ {text}")
            continue
        fig.add_annotation(
            x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
            showarrow=True, arrowhead=2, arrowsize=0.9, arrowwidth=1 + 3 * share,
            arrowcolor=f"rgba(59,91,219,{0.35 + 0.45 * share:.2f})",
            standoff=16, startstandoff=16, text="",
        )
        label_x.append(x0 + (x1 - x0) * 0.5 + 0.04)
        label_y.append(y0 + (y1 - y0) * 0.5)
        label_text.append(text)
    fig.add_trace(
        go.Scatter(x=label_x, y=label_y, mode="text", text=label_text, hoverinfo="skip",
                   textposition="middle right", textfont={"size": 11, "color": "#495057"},
                   showlegend=False)
    )
    names = list(pos)
    fig.add_trace(
        go.Scatter(
            x=[pos[n][0] for n in names], y=[pos[n][1] for n in names], mode="markers+text",
            text=[f"<b>{n}</b>" for n in names], textposition="middle left",
            hovertext=names, hoverinfo="text",
            marker={"size": 18, "color": "#edf2ff", "line": {"width": 2, "color": "#3b5bdb"}},
            showlegend=False,
        )
    )
    widest = max(abs(x) for x, _ in pos.values())
    fig.update_xaxes(visible=False, range=[-widest - 1.2, widest + 0.8])
    fig.update_yaxes(visible=False, autorange="reversed")
    depth = max(y for _, y in pos.values())
    return _base(fig, height=int(120 + 75 * (depth + 1)), title="Process map (directly follows)")


def variant_bars(variants: pd.DataFrame) -> go.Figure:
    """Variants by frequency: columns ``activities`` (the activity sequence) and ``count``."""
    if variants.empty:
        return empty_figure("No variants in this range")
    frame = variants.sort_values("count", ascending=False)
    labels = [f"V{i + 1}" for i in range(len(frame))]
    fig = go.Figure(
        go.Bar(
            x=frame["count"], y=labels, orientation="h", text=frame["count"],
            textposition="auto", marker_color="#3b5bdb",
            hovertext=[" → ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
                       for v in frame["activities"]], hoverinfo="text+x",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _base(fig, height=80 + 28 * len(frame), title="Variants")
