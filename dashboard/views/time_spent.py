"""Where time goes: per step and service, time waiting in Kafka versus time handling (spans);
a row opens (``?step_type=&step=&service=``, a plain link) the slowest handlings behind its
p95, each opening its saga's trace."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

import pandas as pd
import streamlit as st

from sagascope.dashboard import chrome, links, svg, tables, tiles, url_state
from sagascope.dashboard.cached_queries import ask
from sagascope.queries.formatting import format_span_duration

#: Bars drawn (largest total first) and slow handlings listed per row.
TOP_ROWS = 20
EXEMPLARS = 10
#: The URL parameters naming the row whose slowest handlings are shown.
PICKED = ("step_type", "step", "service")


def time_table(times: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "saga type": times["saga_type"], "step": times["step"], "service": times["service"],
        "handled": times["count"],
        "waiting p50": times["wait_p50_s"].map(format_span_duration),
        "waiting p95": times["wait_p95_s"].map(format_span_duration),
        "handling p50": times["handle_p50_s"].map(format_span_duration),
        "handling p95": times["handle_p95_s"].map(format_span_duration),
    })


def picked_url(saga_type: str, step: str, service: str) -> str:
    """This page with one row's slowest handlings shown, the sidebar's filters kept."""
    return links.time_spent_url(**url_state.sidebar_params(),
                                **dict(zip(PICKED, (saga_type, step, service), strict=True)))


#: The bars' layout, in the SVG's own pixels: width, the labels' column, the two panels'
#: left edges and width, a row's height; each measure's colour.
_WIDTH = 980
_LABEL = 330.0
_PANELS = (_LABEL + 10, _LABEL + 330)
_PANEL = 300.0
_ROW = 24
_COLORS = {"waiting p50": "#f08c00", "waiting p95": "#ffc078",
           "handling p50": "#3b5bdb", "handling p95": "#91a7ff"}


def time_bars(times: pd.DataFrame, link: Callable[[str, str, str], str]) -> str:
    """p50 and p95 per step · service as SVG, waiting and handling side by side, each on its
    own scale (handling is often a thousand times shorter than waiting: on one axis it
    vanishes). ``link(saga_type, step, service)``: what a row's label opens (its slowest handlings)."""
    frame = times.assign(total=times["wait_p95_s"] + times["handle_p95_s"])
    frame = frame.sort_values("total", ascending=False).head(TOP_ROWS)
    title = "Where time goes per step and service (p50, p95)"
    top = 56
    parts = [svg.text(0, 18, title, size=15, weight="600")]
    scales = []
    for left, panel, column in ((_PANELS[0], "waiting in Kafka", "wait_p95_s"),
                                (_PANELS[1], "handling", "handle_p95_s")):
        scale = svg.Scale(0.0, float(frame[column].max()) * 1.3 or 1.0, left, left + _PANEL)
        scales.append(scale)
        parts += [svg.text(left, top - 14, panel, weight="600"),
                  svg.line(left, top - 6, left, top + _ROW * len(frame))]
    for i, row in enumerate(frame.to_dict("records")):
        y = top + i * _ROW
        label = f"{row['saga_type']} · {row['step']} · {row['service']}"
        href = escape(link(str(row["saga_type"]), str(row["step"]), str(row["service"])))
        parts.append(f'<a href="{href}" target="_self" '
                     f'class="row-link">{svg.tooltip(f"{label}: its slowest handlings")}'
                     + svg.text(_LABEL - 8, y + 15, svg.clipped(label, 52), anchor="end",
                                extra=' class="bar-label"') + "</a>")
        for scale, kind, p50, p95 in ((scales[0], "waiting", row["wait_p50_s"],
                                       row["wait_p95_s"]),
                                      (scales[1], "handling", row["handle_p50_s"],
                                       row["handle_p95_s"])):
            for offset, pct, value in ((3, "p50", p50), (12, "p95", p95)):
                measure = f"{kind} {pct}"
                shown = format_span_duration(float(value))
                parts.append(svg.rect(scale.left, y + offset, scale(float(value)) - scale.left,
                                      8, _COLORS[measure], hover=f"{label}\n{measure}: {shown}"))
            parts.append(svg.text(scale(float(p95)) + 4, y + 19, format_span_duration(
                float(p95)), size=10, color=svg.MUTED))
    bottom = top + _ROW * len(frame) + 22
    left = _PANELS[0]
    for measure, color in _COLORS.items():
        parts += [svg.rect(left, bottom - 10, 12, 12, color),
                  svg.text(left + 18, bottom, measure, size=12, color=svg.MUTED)]
        left += 130
    return svg.document(_WIDTH, bottom + 10, parts, label=title)


def slow_table(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "saga": rows["saga_id"], "waited in Kafka": rows["wait_s"].map(format_span_duration),
        "handling": rows["handle_s"].map(format_span_duration),
        "total": (rows["wait_s"] + rows["handle_s"]).map(format_span_duration),
        "sent at": rows["kafka_time"], "trace": rows["trace_id"],
    })


def _exemplars(row: pd.Series) -> None:
    """The slowest handlings behind one row: each opens its saga on this trace."""
    saga_type, step, service = str(row["saga type"]), str(row["step"]), str(row["service"])
    with st.container(border=True):
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.markdown(f"**Slowest handlings of {tables.escape_md(step)} by "
                      f"{tables.escape_md(service)}** ({tables.escape_md(saga_type)}): waiting "
                      f"p95 {row['waiting p95']}, handling p95 {row['handling p95']}")
        if right.button("Open its sagas", key="time_step_sagas", width="stretch"):
            links.open_sagas(type=saga_type, step=step, service=service,
                             **url_state.range_params())
        slow = tables.frame(ask().slowest_handlings(url_state.current_filter(), saga_type, step,
                                                    service, EXEMPLARS))
        if slow.empty:
            st.caption("No handling of this step in the range.")
            return
        table = slow_table(slow)
        keep = url_state.sidebar_params()
        st.html(tables.html_table(
            table, time_format="%Y-%m-%d %H:%M:%S.%f", label="Slowest handlings",
            row_link=lambda i: links.flow_url(str(table["saga"].iloc[i]),
                                              trace=str(table["trace"].iloc[i]), **keep)))
        st.caption("Click one to open its saga's flow on that trace (the span waterfall).")


def _picked(table: pd.DataFrame) -> pd.Series | None:
    """The row the URL names (``?step_type=&step=&service=``), if it is in ``table``."""
    for param in PICKED:
        url_state.url_bound(param, strict=True)
    wanted = [url_state.value(param) for param in PICKED]
    if not all(wanted):
        return None
    hit = table[(table["saga type"] == wanted[0]) & (table["step"] == wanted[1])
                & (table["service"] == wanted[2])]
    return None if hit.empty else hit.iloc[0]


def render() -> None:
    st.title("Where time goes")
    if chrome.empty_store_notice():
        return
    times = tables.frame(ask().step_times(url_state.current_filter()))
    if times.empty:
        st.info("No handler spans in this range: services instrumented with sagascope's "
                "`saga_handler` report them.", icon=":material/timer_off:")
        return
    tiles.tiles([
        tiles.Tile("Handler runs", int(times["count"].sum())),
        tiles.Tile("Slowest wait (p95)", format_span_duration(float(times["wait_p95_s"].max()))),
        tiles.Tile("Slowest handler (p95)",
                   format_span_duration(float(times["handle_p95_s"].max()))),
    ])
    # SVG drawn here, shown as Markdown with HTML (st.html strips SVG): no chart script.
    st.markdown(time_bars(times, picked_url), unsafe_allow_html=True)
    table = time_table(times)
    picked = _picked(table)
    # A plain table, each row a link to this page with that row's slowest handlings.
    st.html(tables.html_table(
        table, numeric=("handled",), key="step", label="Where time goes",
        row_link=lambda i: picked_url(*(str(table[c].iloc[i])
                                        for c in ("saga type", "step", "service")))))
    if picked is None:
        st.caption("Click a row to see the slowest handlings behind its p95 and open their "
                   "sagas and traces.")
    else:
        _exemplars(picked)
    st.caption("Waiting: from the message's Kafka time to the start of the handler's span. "
               "Handling: the handler span's duration. Messages from services without "
               "sagascope's handler (legacy systems) have no span and are not counted.")


if __name__ == "__main__":
    chrome.live(render)
