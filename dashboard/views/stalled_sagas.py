"""Stalled sagas: after which step, waiting for what, since when, against which threshold."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from sagascope.dashboard import chrome, figures, links, tables, tiles, url_state
from sagascope.dashboard.cached_queries import ask

#: Rows shown in the table; the counts above it cover all.
MAX_ROWS = 100


def stalled_table(stalled: pd.DataFrame) -> pd.DataFrame:
    """The stalled sagas, longest silent first, with a link to each flow."""
    table = stalled.sort_values("silent_s", ascending=False).head(MAX_ROWS)
    return pd.DataFrame({
        "saga": table["saga_id"],
        "saga type": table["saga_type"],
        "stalled after": table["step"],
        "last message": table["last_type"],
        "waiting for": table["waiting_for"],
        "since": table["since"],
        "silent": table["silent_s"].map(figures.format_duration),
        "threshold": table["threshold_s"].map(figures.format_duration),
    })


def render() -> None:
    st.title("Stalled sagas")
    if chrome.empty_store_notice():
        return
    stalled = tables.frame(ask().stalled(url_state.current_filter()))
    if stalled.empty:
        st.success("No saga is stalled: every unfinished saga was heard from within its "
                   "threshold.", icon=":material/check_circle:")
        return
    keep = url_state.sidebar_params()
    tiles.tiles([
        tiles.Tile("Stalled sagas", len(stalled), more="List them",
                   href=links.sagas_url(status="stalled", **keep)),
        tiles.Tile("Longest silence", figures.format_duration(float(stalled["silent_s"].max()))),
        tiles.Tile("Steps affected", stalled["step"].nunique()),
    ])
    by_step = stalled.groupby("step", as_index=False).size().rename(columns={"size": "count"})
    step_bars, steps = figures.count_bars(
        by_step, "step", title="Stalled after step (click to list them)",
        color=figures.STATUS_COLORS["stalled"],
        link=lambda step: links.sagas_url(status="stalled", at=step, **keep))
    by_wait = (stalled.groupby("waiting_for", as_index=False).size()
               .rename(columns={"size": "count"}))
    wait_bars, waits = figures.count_bars(by_wait, "waiting_for", title="Waiting for",
                                          color="#f08c00")
    # SVG drawn here, shown as Markdown: no chart script for a first visit to load.
    st.markdown(figures.side_by_side((step_bars + figures.shown_of(steps), 1),
                                     (wait_bars + figures.shown_of(waits), 1)),
                unsafe_allow_html=True)
    if len(stalled) > MAX_ROWS:
        st.caption(f"Showing the {MAX_ROWS} longest silent of {len(stalled):,}.")
    table = stalled_table(stalled)
    st.html(tables.html_table(
        table, label="Stalled sagas",
        row_link=lambda i: links.flow_url(str(table["saga"].iloc[i]), **keep)))
    st.caption("Click a row to open its flow and read why it is stalled.")

if __name__ == "__main__":
    chrome.live(render)
