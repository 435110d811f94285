"""The process map drawn on the server as SVG (laid out by :mod:`layered_layout`): every step
a box with its counts, every arrow its overlay's label and a width by frequency, a start and an
end marker; each step and arrow a link, with a tooltip. Pure: data in, SVG out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from html import escape
from typing import Any

import pandas as pd

from sagascope.dashboard import svg
from sagascope.dashboard.layered_layout import Box, Layout, Link, Route, layered
from sagascope.queries.formatting import format_duration

START, END = "\0start", "\0end"
#: Text widths in pixels per character (the page's sans-serif at these sizes, a little wide).
_NAME_PX, _SMALL_PX = 7.4, 6.4
_LINE_PX = 16.0
_LABEL_LINE_PX = 13.0
_ENDPOINT_PX = 16.0
_STEP = {"fill": "#edf2ff", "stroke": "#3b5bdb", "width": 1.2}
_STALLED = {"fill": "#fff4e6", "stroke": "#f08c00", "width": 2.0}
_ARROW = "#5c7cfa"
_QUIET = "#adb5bd"
_DEFS = (
    "<defs>"
    + "".join(
        f'<marker id="{name}" viewBox="0 0 10 10" refX="1" refY="5" markerWidth="10" '
        f'markerHeight="10" markerUnits="userSpaceOnUse" orient="auto">'
        f'<path d="M 0 0 L 10 5 L 0 10 z" fill="{color}"/></marker>'
        for name, color in (("pm-arrow", _ARROW), ("pm-arrow-quiet", _QUIET)))
    + "</defs>"
)
#: The page's links are underlined; a step's or an arrow's text reads better without.
_NO_UNDERLINE = 'style="text-decoration:none"'
#: How far an arrow's line stops short of its box: the arrowhead fills the rest.
_HEAD_PX = 9.0


def process_map_svg(
    nodes: pd.DataFrame,
    edges: pd.DataFrame,
    *,
    overlay: str = "frequency",
    live: Mapping[str, Mapping[str, int]] | None = None,
    node_link: Callable[[str], str] | None = None,
    edge_link: Callable[[str, str], str] | None = None,
) -> str:
    """The directly-follows graph, top to bottom, as SVG.

    ``nodes``: ``activity``, ``count``, ``starts``, ``ends`` and ``sagas`` (what a step's link
    opens; else ``count``); ``edges``: ``source``, ``target``, ``count``, ``median_s``,
    ``p95_s`` and ``sagas``. ``overlay``: ``frequency`` (sagas, and times when some took an
    arrow more than once) or ``duration`` (median and p95) on the arrows. ``live``: activity ->
    {"running": n, "compensating": n, "stalled": n}, drawn on the step (running and
    compensating as waiting; a step with stalled sagas is orange). ``node_link(activity)`` and
    ``edge_link(a, b)``: the URL each step and arrow opens, in this tab.
    """
    live = live or {}
    steps = nodes.to_dict("records")
    arrows = edges.to_dict("records")
    lines = {str(row["activity"]): _step_lines(row, live.get(str(row["activity"]), {}))
             for row in steps}
    boxes = [Box(START, _ENDPOINT_PX, _ENDPOINT_PX), Box(END, _ENDPOINT_PX, _ENDPOINT_PX)]
    boxes += [Box(name, _box_width(text), _LINE_PX * len(text) + 10)
              for name, text in lines.items()]
    labels: dict[tuple[str, str], str] = {}
    weights: dict[tuple[str, str], float] = {}
    for row in steps:
        name = str(row["activity"])
        for key, amount in (((START, name), row.get("starts", 0)), ((name, END), row.get("ends", 0))):
            if int(amount or 0):
                labels[key], weights[key] = f"{int(amount):,}", float(amount)
    for row in arrows:
        key = (str(row["source"]), str(row["target"]))
        labels[key], weights[key] = _arrow_label(row, overlay), float(row["count"])
    layout = layered(boxes, [Link(a, b, weights[(a, b)],
                                  (_SMALL_PX * max(map(len, text.split("\n"))),
                                   _LABEL_LINE_PX * (text.count("\n") + 1)))
                             for (a, b), text in labels.items()], first=START, last=END)
    top = max(weights.values(), default=1.0) or 1.0
    facts = {(str(r["source"]), str(r["target"])): r for r in arrows}
    parts = [_DEFS]
    for route in layout.routes:
        a, b = route.link.source, route.link.target
        quiet = START in (a, b) or END in (a, b)
        parts.append(_arrow(route, labels[(a, b)], 1 + 4 * weights[(a, b)] / top, quiet=quiet,
                            hover=_arrow_hover(facts.get((a, b)), a, b, labels[(a, b)]),
                            link=None if quiet or edge_link is None else edge_link(a, b)))
    parts += _endpoints(layout)
    for row in steps:
        name = str(row["activity"])
        parts.append(_step(layout, name, lines[name], row, live.get(name, {}),
                           link=node_link(name) if node_link else None))
    return svg.document(int(layout.size[0]) + 1, int(layout.size[1]) + 1, parts,
                        label="Process map")


def _step_lines(row: Mapping[str, Any], counts: Mapping[str, int]) -> list[str]:
    """The step's name, how many sagas passed (and how often), and who waits or stalls there."""
    times, sagas = int(row["count"]), int(row.get("sagas") or row["count"])
    text = [str(row["activity"]),
            f"{sagas:,} sagas" + (f" · {times:,} times" if times != sagas else "")]
    waiting = int(counts.get("running", 0)) + int(counts.get("compensating", 0))
    stalled = int(counts.get("stalled", 0))
    if waiting or stalled:
        text.append(f"{waiting} waiting · {stalled} stalled")
    return text


def _box_width(text: list[str]) -> float:
    return max(len(text[0]) * _NAME_PX, *(len(t) * _SMALL_PX for t in text[1:])) + 24


def _arrow_label(row: Mapping[str, Any], overlay: str) -> str:
    if overlay == "duration":  # two short lines: a long one would push the arrows apart
        return (f"{format_duration(row.get('median_s')) or '0 s'}\n"
                f"p95 {format_duration(row.get('p95_s')) or '0 s'}")
    times, sagas = int(row["count"]), int(row.get("sagas") or row["count"])
    return f"{sagas:,}" if times == sagas else f"{sagas:,} sagas · {times:,} times"


def _arrow_hover(row: Mapping[str, Any] | None, a: str, b: str, label: str) -> str:
    if row is None:
        return f"{label} sagas " + ("started at " + b if a == START else "ended after " + a)
    sagas, times = int(row.get("sagas") or row["count"]), int(row["count"])
    return (f"{a} → {b}\n{sagas:,} sagas took it ({times:,} times)\n"
            f"median {format_duration(row.get('median_s')) or '0 s'}, "
            f"p95 {format_duration(row.get('p95_s')) or '0 s'}\nclick to open those sagas")


def _path(route: Route) -> str:
    """The route as one smooth curve through its points (Catmull-Rom), leaving and entering its
    boxes vertically; a self-loop goes out to the right and back."""
    points = list(route.points)
    if route.self_loop:
        (x0, y0), (x1, _), (x2, y2) = points
        return (f"M {x0:.1f} {y0:.1f} C {x1 + 8:.1f} {y0 - 10:.1f} {x1 + 8:.1f} "
                f"{y2 + 10:.1f} {x2 + _HEAD_PX:.1f} {y2:.1f}")
    # Stop short of the box, so the arrowhead's tip touches it.
    x_end, y_end = points[-1]
    points[-1] = (x_end, y_end + (_HEAD_PX if route.back else -_HEAD_PX))
    step = 1.0 if points[-1][1] >= points[0][1] else -1.0
    # Phantom points straight above the first and below the last: vertical ends.
    padded = [(points[0][0], points[0][1] - 20 * step), *points,
              (points[-1][0], points[-1][1] + 20 * step)]
    out = [f"M {points[0][0]:.1f} {points[0][1]:.1f}"]
    for i in range(1, len(padded) - 2):
        (xa, ya), (x0, y0), (x1, y1), (xb, yb) = padded[i - 1:i + 3]
        out.append(f"C {x0 + (x1 - xa) / 6:.1f} {y0 + (y1 - ya) / 6:.1f} "
                   f"{x1 - (xb - x0) / 6:.1f} {y1 - (yb - y0) / 6:.1f} {x1:.1f} {y1:.1f}")
    return " ".join(out)


def _arrow(route: Route, label: str, width: float, *, quiet: bool, hover: str,
           link: str | None) -> str:
    """An arrow, its label, and a wider invisible stroke that makes a thin line easy to hit."""
    path = _path(route)
    color = _QUIET if quiet else _ARROW
    dash = ' stroke-dasharray="5 4"' if quiet else ""
    kind = "pm-edge" + (" back" if route.back else "") + (" loop" if route.self_loop else "")
    body = (f"{svg.tooltip(hover)}"
            f'<path d="{path}" fill="none" stroke="{color}" stroke-width="{width:.2f}"{dash} '
            f'marker-end="url(#{"pm-arrow-quiet" if quiet else "pm-arrow"})"/>'
            f'<path d="{path}" fill="none" stroke="#000" stroke-opacity="0" stroke-width="12" '
            'pointer-events="stroke"/>'
            + _label(route, label))
    data = (f'class="{kind}" data-from="{escape(_shown(route.link.source))}" '
            f'data-to="{escape(_shown(route.link.target))}"')
    if link is None:
        return f"<g {data}>{body}</g>"
    return f'<a href="{escape(link)}" target="_self" {_NO_UNDERLINE} {data}>{body}</a>'


def _shown(key: str) -> str:
    """A node's name in the SVG's attributes: the start and end markers as ``(start)`` and
    ``(end)`` (their keys are no step's name, and not text XML allows)."""
    return {START: "(start)", END: "(end)"}.get(key, key)


def _label(route: Route, label: str) -> str:
    """The arrow's label, a line under another, haloed in white so crossing lines do not
    hide it."""
    x, y = route.label_at
    lines = label.split("\n")
    y -= _LABEL_LINE_PX * (len(lines) - 1) / 2
    return "".join(svg.text(x, y + _LABEL_LINE_PX * i, line, size=11, color="#343a40",
                            extra=' paint-order="stroke" stroke="white" stroke-width="3"')
                   for i, line in enumerate(lines))


def _endpoints(layout: Layout) -> list[str]:
    (start_x, start_y), (end_x, end_y) = layout.boxes[START], layout.boxes[END]
    r = _ENDPOINT_PX / 2
    return [
        f'<circle cx="{start_x:.1f}" cy="{start_y:.1f}" r="{r - 1:.1f}" fill="#2f9e44">'
        f"{svg.tooltip('start')}</circle>",
        f'<g>{svg.tooltip("end")}<circle cx="{end_x:.1f}" cy="{end_y:.1f}" r="{r:.1f}" '
        f'fill="none" stroke="#343a40" stroke-width="1.5"/><circle cx="{end_x:.1f}" '
        f'cy="{end_y:.1f}" r="{r - 3:.1f}" fill="#343a40"/></g>',
    ]


def _step(layout: Layout, name: str, text: list[str], row: Mapping[str, Any],
          counts: Mapping[str, int], *, link: str | None) -> str:
    """A step's box and its lines; a link to its sagas."""
    centre_x, centre_y = layout.boxes[name]
    width, height = _box_width(text), _LINE_PX * len(text) + 10
    look = _STALLED if int(counts.get("stalled", 0)) else _STEP
    sagas = int(row.get("sagas") or row["count"])
    hover = f"{name}: {sagas:,} sagas passed through it ({int(row['count']):,} times)"
    if link:
        hover += "\nclick to open them"
    x, y = centre_x - width / 2, centre_y - height / 2
    body = [svg.tooltip(hover),
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" rx="7" '
            f'fill="{look["fill"]}" stroke="{look["stroke"]}" stroke-width="{look["width"]}"/>']
    for i, line in enumerate(text):
        body.append(svg.text(centre_x, y + 5 + _LINE_PX * (i + 1) - 3, line,
                             size=12 if i == 0 else 11, anchor="middle",
                             weight="600" if i == 0 else "normal",
                             color="#212529" if i == 0 else svg.MUTED))
    data = f'class="pm-node" data-step="{escape(name)}"'
    if link is None:
        return f"<g {data}>{''.join(body)}</g>"
    return f'<a href="{escape(link)}" target="_self" {_NO_UNDERLINE} {data}>{"".join(body)}</a>'
