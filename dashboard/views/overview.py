"""Overview: sagas by status, throughput, cycle-time percentiles over time, failure rate.
Every tile and bar opens the saga list it counts."""

from __future__ import annotations

import streamlit as st

from sagascope.dashboard import charts, choice_links, chrome, figures, links, tables, tiles, url_state
from sagascope.dashboard.cached_queries import ask
from sagascope.queries import SagaFilter

_UNSUCCESSFUL = ("failed", "compensating", "compensated")
_FINISHED_OR_UNDOING = ("completed", "failed", "compensating", "compensated")
#: Tiles: label -> the status the saga list is filtered by ("" for every saga).
_TILES = {"Sagas": "", "Running": "running", "Stalled": "stalled", "Completed": "completed",
          "Failed": "failed", "Compensated": "compensated"}


def failure_rate(counts: dict[str, int]) -> float | None:
    """Share of sagas that did not complete, among those that reached an outcome."""
    decided = sum(counts.get(s, 0) for s in _FINISHED_OR_UNDOING)
    if decided == 0:
        return None
    return sum(counts.get(s, 0) for s in _UNSUCCESSFUL) / decided


def _list_params(status: str = "") -> dict[str, str]:
    """The saga list's URL filters for what this page counts (type, range, status)."""
    return {k: v for k, v in {"status": status, "type": url_state.value("type"),
                              **url_state.range_params()}.items() if v}


def _tiles(counts: dict[str, int], total: int) -> None:
    items = [tiles.Tile(label, total if not status else counts.get(status, 0),
                        href=links.sagas_url(**_list_params(status)), more="List them")
             for label, status in _TILES.items()]
    rate = failure_rate(counts)
    # Whole percents from 10 % up: "33.3%" does not fit a tile of seven at 1440 px.
    items.append(tiles.Tile(
        "Failure rate", "–" if rate is None else f"{rate:.0%}" if rate >= 0.1 else f"{rate:.1%}",
        help="failed, compensating or compensated, among sagas with an outcome"))
    tiles.tiles(items)


def _cycle_times(filters: SagaFilter, width_s: int) -> None:
    key = url_state.url_bound("pct", "p95_s", strict=True)
    if st.session_state.get(key) not in charts.PERCENTILES:
        st.session_state[key] = "p95_s"
    url_state.sync_url({"pct": "p95_s"})
    percentile = str(st.session_state.get(key) or "p95_s")
    st.markdown(choice_links.choices(st.query_params.to_dict(), "pct", charts.PERCENTILES,
                                     "p95_s", title="Cycle-time percentile"),
                unsafe_allow_html=True)
    over_time = tables.frame(ask().cycle_times_over_time(filters, width_s))
    start, end = url_state.range_bounds()
    # SVG drawn here, shown as Markdown with HTML (st.html strips SVG): no chart script.
    st.markdown(charts.cycle_time_multiples(
        over_time, percentile, width_s, start or st.session_state.get("_data_since"),
        end or url_state.anchor(), url_state.describe_bucket(width_s)), unsafe_allow_html=True)


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
    _tiles(counts, total)

    width_s = url_state.bucket_seconds()
    start, end = url_state.range_bounds()
    points = tables.frame(answers.throughput(filters, width_s))
    st.markdown(figures.side_by_side(
        (charts.status_bars(counts, lambda status: links.sagas_url(**_list_params(status))), 2),
        (charts.throughput_bars(points, width_s, start or st.session_state.get("_data_since"),
                                end or url_state.anchor(), url_state.describe_bucket(width_s)),
         3)), unsafe_allow_html=True)

    # Fewer, wider buckets for the percentiles: steadier figures, and a dot (with its
    # figures on hover) per bucket stays light to draw (at most 60 per saga type).
    _cycle_times(filters, url_state.bucket_seconds(most=60))

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
    # A plain table: no data grid script for a first visit to load.
    st.html(tables.html_table(table, numeric=("finished",), label="Cycle time by saga type"))


if __name__ == "__main__":
    chrome.live(render)
