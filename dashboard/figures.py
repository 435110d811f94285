"""The flow page's swimlane and the count bars (SVG, drawn here: see :mod:`svg`): pure
functions, data in, chart out (the process map's: :mod:`process_graph`).

Each function takes plain data (a mapping or a pandas DataFrame with the columns its docstring
names), never a store or a query object, so each chart is testable with hand-made rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

import pandas as pd

from sagascope.dashboard import svg
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


def swimlane(messages: pd.DataFrame, now: Any = None,
             silent_s: float | None = None) -> str:
    """The flow of one saga as SVG: one lane per service, one marker per message (a square
    for a command, a circle for an event, a cross for a compensation), an arrow from each
    message to the messages it caused. Hovering a marker tells the message.

    Columns: ``seq`` (causal order), ``event_time``, ``source``, ``type``, ``kind``,
    ``message_id``, ``causation_id``, and optionally ``position`` (where to draw it: a time that
    respects causality, else ``event_time``), ``skew_s`` (> 0: its clock put it before its
    cause; marked), ``step``, ``saga_status``, ``compensates``, ``duplicate``. ``now``: a time
    to mark with a vertical "now" line (an unfinished saga's silence up to it); ``silent_s``:
    the silence to print (the query layer's, measured on Kafka time), else now minus the last
    message.
    """
    if messages.empty:
        return svg.empty("No messages")
    frame = messages.copy()
    if "position" not in frame:
        frame["position"] = frame["event_time"]
    frame["position"] = pd.to_datetime(frame["position"], utc=True)
    skew = frame.get("skew_s", pd.Series([0.0] * len(frame), index=frame.index)).fillna(0.0)
    frame["skewed"] = skew > 0
    frame["source"] = frame["source"].fillna("").replace("", "(unknown)")
    lanes = list(dict.fromkeys(frame.sort_values("seq")["source"]))
    lane_of = {name: i for i, name in enumerate(lanes)}
    frame["lane"] = frame["source"].map(lane_of)
    compensates = frame.get("compensates", pd.Series([""] * len(frame), index=frame.index))
    frame["is_compensation"] = compensates.fillna("").astype(str) != ""
    frame["status"] = frame.get("saga_status",
                                pd.Series([""] * len(frame), index=frame.index)).fillna("")
    origin = frame["position"].min()
    frame["at_s"] = (frame["position"] - origin).dt.total_seconds()
    last_s = float(frame["at_s"].max())
    span_s = max(last_s, 1.0)
    now_s: float | None = None
    if now is not None:
        moment = pd.Timestamp(now)
        moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment
        now_s = max((moment - origin).total_seconds(), last_s)
    # The "now" line is drawn when the silence does not dwarf the flow (else an arrow says it).
    shown_now = now_s is not None and now_s - last_s <= 3 * span_s
    high = max(now_s if shown_now and now_s is not None else last_s, 0.001)
    pad = 0.04 * high
    scale = svg.Scale(-pad, high + pad, _LANE_LABEL, _SWIM_WIDTH - 20)
    height = _SWIM_TOP + _LANE * len(lanes) + 40
    bottom = _SWIM_TOP + _LANE * len(lanes) - _LANE / 2
    parts = [svg.text(0, 18, "Swimlane", size=15, weight="600")]
    for i, name in enumerate(lanes):
        y = _lane_y(i)
        parts += [svg.line(_LANE_LABEL, y, _SWIM_WIDTH - 20, y),
                  svg.text(_LANE_LABEL - 12, y + 4, svg.clipped(name, 17), anchor="end",
                           extra=' class="lane"')]
    ticks = [max(value, 0.0) for value in svg.Scale(0.0, high, 0, 1).ticks()]
    for i, value in enumerate(ticks):
        when = origin + pd.Timedelta(seconds=value)
        parts.append(svg.text(scale(value), bottom + 20, when.strftime("%H:%M:%S.%f")[:-3],
                              size=11, color=svg.MUTED,
                              anchor="end" if i == len(ticks) - 1 else "middle"))
    parts.append(svg.text(_LANE_LABEL, bottom + 38, "event time (UTC; a consequence never "
                          "drawn before its cause)", size=11, color=svg.MUTED))
    parts += _cause_arrows(frame, scale)
    parts += _message_markers(frame, scale)
    if now_s is not None:
        parts += _mark_now(scale, now_s if shown_now else None, bottom,
                           silent_s if silent_s is not None else now_s - last_s)
    return svg.document(_SWIM_WIDTH, height, parts, label="Swimlane")


#: Swimlane layout, in the SVG's own pixels: width, the lane labels' column, the first lane's
#: top and each lane's height.
_SWIM_WIDTH = 960
_LANE_LABEL = 130.0
_SWIM_TOP = 52
_LANE = 72


def _lane_y(lane: int) -> float:
    return _SWIM_TOP + _LANE * lane + _LANE / 2 - 6


def _cause_arrows(frame: pd.DataFrame, scale: svg.Scale) -> list[str]:
    """An arrow from each message to every message it caused (``data-lanes``: from, to)."""
    position = {
        str(mid): (scale(at), int(lane))
        for mid, at, lane in zip(frame["message_id"], frame["at_s"], frame["lane"], strict=True)
        if mid
    }
    parts = []
    for cause, mid in zip(frame["causation_id"], frame["message_id"], strict=True):
        if cause and str(cause) in position and str(mid) in position:
            (x0, lane0), (x1, lane1) = position[str(cause)], position[str(mid)]
            y0, y1 = _lane_y(lane0), _lane_y(lane1)
            length = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1.0)
            if length < 20:
                continue  # the two markers touch: an arrow would not show
            dx, dy = (x1 - x0) / length * 9, (y1 - y0) / length * 9
            parts.append(svg.line(
                x0 + dx, y0 + dy, x1 - dx, y1 - dy, color="#adb5bd", width=1.3,
                extra=f' marker-end="url(#arrowhead)" class="cause" '
                      f'data-lanes="{lane0},{lane1}"'))
    return parts


def _marker_color(row_status: str, is_comp: bool, kind: str) -> str:
    if row_status in STATUS_COLORS:
        return STATUS_COLORS[row_status]
    if is_comp:
        return STATUS_COLORS["compensating"]
    return "#3b5bdb" if kind == "command" else "#1098ad"


def _message_markers(frame: pd.DataFrame, scale: svg.Scale) -> list[str]:
    """A marker per message, its type written above it (below, for every second message
    of a lane, so neighbours do not overwrite each other)."""
    parts = []
    placed: dict[int, int] = {}
    for row in frame.sort_values("seq").to_dict("records"):
        lane = int(row["lane"])
        nth = placed.get(lane, 0)
        placed[lane] = nth + 1
        x, y = scale(float(row["at_s"])), _lane_y(lane)
        compensation = bool(row["is_compensation"])
        name = "compensation" if compensation else (
            "command" if row["kind"] == "command" else "event")
        color = _marker_color(str(row["status"]), compensation, str(row["kind"]))
        if compensation:
            shape = (f'<path d="M {x - 6:.1f} {y - 6:.1f} L {x + 6:.1f} {y + 6:.1f} '
                     f'M {x - 6:.1f} {y + 6:.1f} L {x + 6:.1f} {y - 6:.1f}" stroke="{color}" '
                     'stroke-width="3.5" stroke-linecap="round"/>')
        elif name == "command":
            shape = (f'<rect x="{x - 6.5:.1f}" y="{y - 6.5:.1f}" width="13" height="13" '
                     f'fill="{color}" stroke="white"/>')
        else:
            shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{color}" stroke="white"/>'
        label = f"⚠ {row['type']} (skewed)" if row["skewed"] else str(row["type"])
        label_y = y - 13 if nth % 2 == 0 else y + 23
        parts.append(
            f'<g class="message {name}" data-kind="{name}">{svg.tooltip(_message_hover(row))}'
            f"{shape}{svg.text(x, label_y, label, size=12, anchor='middle')}</g>")
    return parts


def _mark_now(scale: svg.Scale, now_s: float | None, bottom: float,
              silence_s: float) -> list[str]:
    """A dashed "now" line; when the silence dwarfs the flow (``now_s`` None), text at the
    right edge saying how much later now is, so the messages are not squashed to the left."""
    color = STATUS_COLORS["stalled"]
    if now_s is not None:
        x = scale(now_s)
        return [svg.line(x, _SWIM_TOP - 8, x, bottom, color=color, width=2, dash="6 4"),
                svg.text(x, _SWIM_TOP - 12, "now", color=color, anchor="middle",
                         extra=' class="now"')]
    return [svg.text(_SWIM_WIDTH - 20, _SWIM_TOP - 12,
                     f"now: silent for {format_duration(silence_s)} →", color=color,
                     anchor="end", extra=' class="now"')]


def _message_hover(row: Mapping[str, Any]) -> str:
    parts = [f"{row.get('type', '')} ({row.get('kind', '')})",
             f"#{row.get('seq', '')} at {row.get('event_time')}"]
    if row.get("skew_s"):
        parts.append(f"clock skew: event time {row['skew_s']:.3f} s before its cause")
    for key in ("step", "saga_status", "compensates"):
        if row.get(key):
            parts.append(f"{key}: {row[key]}")
    if row.get("duplicate"):
        parts.append("duplicate delivery")
    return "\n".join(parts)


def side_by_side(*panels: tuple[str, float]) -> str:
    """HTML panels (markup, relative width) in one row that wraps on a narrow screen, shown as
    one Markdown block: ``st.columns`` loads scripts of its own on a first visit (+0.07 s over
    an empty page, quiet machine, ``bench_browser_parts.py``)."""
    cells = "".join(f'<div style="flex: {weight:g} 1 0; min-width: 16rem">{markup}</div>'
                    for markup, weight in panels)
    return ('<div style="display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; '
            'margin-bottom: 1rem">'
            f"{cells}</div>")


def shown_of(total: int, top: int = 25) -> str:
    """A note under a chart that shows only its ``top`` largest of ``total`` (else nothing)."""
    if total <= top:
        return ""
    return (f'<div style="color: #5c6370; font-size: 0.875rem">The {top} largest of {total} '
            "shown; the table below lists every one.</div>")


def count_bars(frame: pd.DataFrame, label: str, value: str = "count", *, title: str = "",
               color: str = "#e03131", top: int = 25, width: int = 520,
               link: Callable[[str], str] | None = None) -> tuple[str, int]:
    """Horizontal bars of ``value`` by ``label``, largest first, at most ``top``, as SVG;
    returns it and how many labels there are in all (the page says when some are left out).
    ``link(label)``: the URL a bar opens (in this tab)."""
    if frame.empty:
        return svg.empty("Nothing to show", width=width), 0
    sums = frame.groupby(label, as_index=False)[value].sum()
    rows = sums.nlargest(top, value)
    names = [str(n) for n in rows[label]]
    drawn = bars(names, [float(v) for v in rows[value]], colors=[color] * len(names),
                 title=title or label, width=width, link=link, titled=bool(title))
    return drawn, len(sums)


def bars(names: Sequence[str], values: Sequence[float], *, colors: Sequence[str],
         title: str, width: int = 520, link: Callable[[str], str] | None = None,
         hovers: Sequence[str] | None = None, titled: bool = True) -> str:
    """Horizontal bars in the order given, each its value written beside it, as SVG.
    ``link(name)``: the URL a bar opens (in this tab); ``hovers``: each bar's hover text
    (else its name and value); ``titled``: write ``title`` above the bars (else it only
    labels the chart for screen readers)."""
    label_px = min(_BAR_LABEL_PX, width * 0.4)
    texts = [f"{int(v):,}" if float(v).is_integer() else f"{v:,.2f}" for v in values]
    # The longest bar ends where its value still fits beside it (about 7 px a character).
    value_px = 7.5 * max(map(len, texts), default=1) + 10
    scale = svg.Scale(0.0, max(values, default=0.0) or 1.0, label_px, width - value_px)
    top_px = 34 if titled else 8
    parts = [svg.text(0, 18, title, size=14, weight="600")] if titled else []
    for i, (name, amount, shown) in enumerate(zip(names, values, texts, strict=True)):
        y = top_px + i * _BAR_ROW
        hover = hovers[i] if hovers is not None else f"{name}: {shown}"
        bar = (svg.text(label_px - 8, y + 16, svg.clipped(name, int(label_px / 6.6)),
                        anchor="end", extra=' class="bar-label"')
               + svg.rect(label_px, y + 4, scale(amount) - label_px, _BAR_ROW - 8, colors[i],
                          hover=hover)
               + svg.text(scale(amount) + 4, y + 16, shown, color=svg.MUTED))
        if link is not None:
            bar = (f'<a href="{escape(link(name))}" target="_self" class="bar-link">'
                   f"{svg.tooltip(hover)}{bar}</a>")
        parts.append(bar)
    height = top_px + _BAR_ROW * len(names) + 6
    return svg.document(width, height, parts, label=title)


#: Count bars: each bar's row height, and the labels' column at most.
_BAR_ROW = 26
_BAR_LABEL_PX = 220.0
