"""Overview: sagas by status, throughput, cycle-time percentiles over time, failure rate."""

from __future__ import annotations

import streamlit as st
from sagascope.dashboard import chrome, figures, tables, url_state
from sagascope.dashboard.cached_queries import ask

_UNSUCCESSFUL = ("failed", "compensating", "compensated")
_FINISHED_OR_UNDOING = ("completed", "failed", "compensating", "compensated")


def failure_rate(counts: dict[str, int]) -> float | None:
    """Share of sagas that did not complete, among those that reached an outcome."""
    decided = sum(counts.get(s, 0) for s in _FINISHED_OR_UNDOING)
    if decided == 0:
        return None
    return sum(counts.get(s, 0) for s in _UNSUCCESSFUL) / decided


def render() -> None:
    st.title("Overview")
    if chrome.empty_store_notice():
        return
    filters = url_state.current_filter()
    answers = ask()
    counts = {k: int(v) for k, v in answers.status_counts(filters).items()}
    total = sum(counts.values())
    if total == 0:
        st.info("No sagas in the selected time range and saga type. Widen the time range "
                "(a replayed historical log needs *All time*).", icon=":material/filter_alt:")
        return

    rate = failure_rate(counts)
    cols = st.columns(6)
    cols[0].metric("Sagas", f"{total:,}")
    cols[1].metric("Running", f"{counts.get('running', 0):,}")
    cols[2].metric("Stalled", f"{counts.get('stalled', 0):,}")
    cols[3].metric("Completed", f"{counts.get('completed', 0):,}")
    cols[4].metric("Failed or undone",
                   f"{sum(counts.get(s, 0) for s in _UNSUCCESSFUL):,}")
    cols[5].metric("Failure rate", "–" if rate is None else f"{rate:.1%}",
                   help="failed, compensating or compensated, among sagas with an outcome")

    width_s = url_state.bucket_seconds()
    left, right = st.columns([2, 3])
    with left:
        st.plotly_chart(figures.status_bars(counts), key="status_bars")
    with right:
        points = tables.frame(answers.throughput(filters, width_s))
        fig = figures.throughput_lines(points)
        fig.update_layout(title_text=f"Started / finished per {url_state.describe_bucket(width_s)}")
        st.plotly_chart(fig, key="throughput")

    over_time = tables.frame(answers.cycle_times_over_time(filters, width_s))
    st.plotly_chart(figures.cycle_time_lines(over_time), key="cycle_times")

    st.subheader("Cycle time by saga type")
    stats = tables.frame(answers.cycle_times(filters))
    if stats.empty:
        st.caption("No finished sagas in this range yet.")
        return
    table = stats[["saga_type", "count", "p50_s", "p95_s", "p99_s", "max_s"]].copy()
    table["saga_type"] = table["saga_type"].replace("*", "all types")
    for column in ("p50_s", "p95_s", "p99_s", "max_s"):
        table[column] = table[column].map(figures.format_duration)
    table.columns = ["saga type", "finished", "p50", "p95", "p99", "max"]
    st.dataframe(table, hide_index=True, width="stretch")


if __name__ == "__main__":
    chrome.live(render)
