"""Where time goes: per step and service, time waiting in Kafka versus time handling (spans)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from sagascope.dashboard import chrome, figures, tables, url_state
from sagascope.dashboard.cached_queries import ask


def short_duration(seconds: float) -> str:
    """Handlers run for milliseconds: say so instead of ``0.00 s``."""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return figures.format_duration(seconds)


def time_table(times: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "saga type": times["saga_type"], "step": times["step"], "service": times["service"],
        "handled": times["count"],
        "waiting p50": times["wait_p50_s"].map(short_duration),
        "waiting p95": times["wait_p95_s"].map(short_duration),
        "handling p50": times["handle_p50_s"].map(short_duration),
        "handling p95": times["handle_p95_s"].map(short_duration),
    })


def time_bars(times: pd.DataFrame) -> go.Figure:
    """Stacked p50 bars per step · service: waiting, then handling (largest total first)."""
    frame = times.assign(label=times["saga_type"] + " · " + times["step"] + " · "
                         + times["service"],
                         total=times["wait_p50_s"] + times["handle_p50_s"])
    frame = frame.sort_values("total", ascending=False).head(20)
    fig = go.Figure([
        go.Bar(y=frame["label"], x=frame["wait_p50_s"], name="waiting in Kafka (p50)",
               orientation="h", marker_color="#f08c00"),
        go.Bar(y=frame["label"], x=frame["handle_p50_s"], name="handling (p50)",
               orientation="h", marker_color="#3b5bdb"),
    ])
    fig.update_layout(barmode="stack")
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(title_text="seconds")
    return figures.style_figure(fig, height=120 + 26 * len(frame),
                                title="Where time goes per step and service (p50)")


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
    cols[1].metric("Slowest wait (p95)", short_duration(float(times["wait_p95_s"].max())))
    cols[2].metric("Slowest handler (p95)", short_duration(float(times["handle_p95_s"].max())))
    st.plotly_chart(time_bars(times), key="time_bars")
    st.dataframe(time_table(times), hide_index=True, width="stretch", key="time_table")
    st.caption("Waiting: from the message's Kafka time to the start of the handler's span. "
               "Handling: the handler span's duration. Messages from services without "
               "sagascope's handler (legacy systems) have no span and are not counted.")


if __name__ == "__main__":
    chrome.live(render)
