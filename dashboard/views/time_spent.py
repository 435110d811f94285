"""Where time goes: per step and service, time waiting in Kafka versus time handling (spans);
a row opens the slowest handlings behind its p95, each opening its saga's trace."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from sagascope.dashboard import charts, chrome, links, tables, url_state
from sagascope.dashboard.cached_queries import ask
from sagascope.queries.formatting import format_span_duration

#: Bars drawn (largest total first) and slow handlings listed per row.
TOP_ROWS = 20
EXEMPLARS = 10


def time_table(times: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "saga type": times["saga_type"], "step": times["step"], "service": times["service"],
        "handled": times["count"],
        "waiting p50": times["wait_p50_s"].map(format_span_duration),
        "waiting p95": times["wait_p95_s"].map(format_span_duration),
        "handling p50": times["handle_p50_s"].map(format_span_duration),
        "handling p95": times["handle_p95_s"].map(format_span_duration),
    })


def time_bars(times: pd.DataFrame) -> charts.Spec:
    """p50 and p95 per step · service, waiting and handling side by side, each on its own
    scale (handling is often a thousand times shorter than waiting: on one axis it vanishes)."""
    frame = times.assign(label=times["saga_type"] + " · " + times["step"] + " · "
                         + times["service"],
                         total=times["wait_p95_s"] + times["handle_p95_s"])
    frame = frame.sort_values("total", ascending=False).head(TOP_ROWS)
    order = list(frame["label"])
    rows = [
        {"label": label, "panel": panel, "measure": measure, "pct": measure[-3:],
         "ms": float(value) * 1000, "shown": format_span_duration(float(value))}
        for label, w50, w95, h50, h95 in zip(frame["label"], frame["wait_p50_s"],
                                            frame["wait_p95_s"], frame["handle_p50_s"],
                                            frame["handle_p95_s"], strict=True)
        for panel, measure, value in (("waiting in Kafka", "waiting p50", w50),
                                      ("waiting in Kafka", "waiting p95", w95),
                                      ("handling", "handling p50", h50),
                                      ("handling", "handling p95", h95))
    ]
    measures = ["waiting p50", "waiting p95", "handling p50", "handling p95"]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": {"text": "Where time goes per step and service (p50, p95)", "anchor": "start",
                  "fontSize": 15},
        "data": {"values": rows},
        "facet": {"column": {"field": "panel", "type": "nominal", "title": None,
                             "sort": ["waiting in Kafka", "handling"]}},
        "resolve": {"scale": {"x": "independent"}},
        "spec": {
            "width": 330, "height": {"step": 12},
            "mark": {"type": "bar", "cornerRadiusEnd": 2},
            "encoding": {
                "y": {"field": "label", "type": "nominal", "sort": order, "title": None,
                      "axis": {"labelLimit": 320}},
                "yOffset": {"field": "pct", "sort": ["p50", "p95"]},
                "x": {"field": "ms", "type": "quantitative", "title": "ms"},
                "color": {"field": "measure", "type": "nominal", "title": None,
                          "scale": {"domain": measures,
                                    "range": ["#f08c00", "#ffc078", "#3b5bdb", "#91a7ff"]},
                          "legend": {"orient": "bottom"}},
                "tooltip": [{"field": "label", "title": "step · service"},
                            {"field": "measure"}, {"field": "shown", "title": "time"}],
            },
        },
    }


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
        event = st.dataframe(
            table, hide_index=True, width="stretch", key="time_exemplars", on_select="rerun",
            selection_mode="single-row",
            column_config={"sent at": st.column_config.DatetimeColumn(
                format="YYYY-MM-DD HH:mm:ss.SSS")},
        )
        st.caption("Select one to open its saga's flow on that trace (the span waterfall).")
        chosen = tables.selected_row(event)
        if chosen is not None:
            links.open_flow(str(table["saga"].iloc[chosen]),
                            trace=str(table["trace"].iloc[chosen]))


def render() -> None:
    st.title("Where time goes")
    if chrome.empty_store_notice():
        return
    times = tables.frame(ask().step_times(url_state.current_filter()))
    if times.empty:
        st.info("No handler spans in this range: services instrumented with sagascope's "
                "`saga_handler` report them.", icon=":material/timer_off:")
        return
    cols = st.columns(3)
    cols[0].metric("Handler runs", f"{int(times['count'].sum()):,}")
    cols[1].metric("Slowest wait (p95)", format_span_duration(float(times["wait_p95_s"].max())))
    cols[2].metric("Slowest handler (p95)", format_span_duration(float(times["handle_p95_s"].max())))
    st.vega_lite_chart(time_bars(times), key="time_bars")
    table = time_table(times)
    event = st.dataframe(table, hide_index=True, width="stretch", key="time_table",
                         on_select="rerun", selection_mode="single-row")
    chosen = tables.selected_row(event)
    if chosen is None:
        st.caption("Select a row to see the slowest handlings behind its p95 and open their "
                   "sagas and traces.")
    else:
        _exemplars(table.iloc[chosen])
    st.caption("Waiting: from the message's Kafka time to the start of the handler's span. "
               "Handling: the handler span's duration. Messages from services without "
               "sagascope's handler (legacy systems) have no span and are not counted.")


if __name__ == "__main__":
    chrome.live(render)
