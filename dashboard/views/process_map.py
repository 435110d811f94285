"""Process map: the directly-follows graph discovered from traffic, its variants, step times."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sagascope.dashboard import _chrome, figures

_BY = {"Message type": "type", "Step": "step"}
VARIANT_LIMIT = 20


def variants_table(variants: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "variant": [f"V{i + 1}" for i in range(len(variants))],
        "sagas": variants["count"],
        "share": variants["share"],
        "median cycle time": variants["median_cycle_s"].map(figures.format_duration),
        "path": [" → ".join(map(str, a)) for a in variants["activities"]],
    })


def render() -> None:
    st.title("Process map")
    if _chrome.empty_store_notice():
        return
    by_label = st.segmented_control("Activities", list(_BY), default="Message type",
                                    key="process_map_by")
    by = _BY[by_label or "Message type"]
    filters = _chrome.current_filter()
    graph = _chrome.ask("process_map", filters, by=by)
    if not graph.edges:
        st.info("No transitions in this range yet.", icon=":material/account_tree:")
        return
    cols = st.columns(3)
    cols[0].metric("Sagas", f"{graph.sagas:,}")
    cols[1].metric("Activities", len(graph.nodes))
    cols[2].metric("Transitions", len(graph.edges))
    edges = _chrome.frame(graph.edges)
    st.plotly_chart(figures.process_map(edges), key="process_map")
    st.caption("Each arrow: how many times one activity directly followed another, and the "
               "median time between them (event time).")

    st.subheader("Variants")
    variants = _chrome.frame(_chrome.ask("variants", filters, VARIANT_LIMIT, by=by))
    if variants.empty:
        st.caption("No variants.")
    else:
        left, right = st.columns([2, 3])
        with left:
            st.plotly_chart(figures.variant_bars(variants), key="variants")
        with right:
            st.dataframe(
                variants_table(variants), hide_index=True, width="stretch", key="variants_table",
                column_config={"share": st.column_config.ProgressColumn(
                    format="percent", min_value=0.0, max_value=1.0)},
            )

    with st.expander("Transition times"):
        table = edges.sort_values("count", ascending=False)
        st.dataframe(
            pd.DataFrame({
                "from": table["source"], "to": table["target"], "count": table["count"],
                "median": table["median_s"].map(figures.format_duration),
                "p95": table["p95_s"].map(figures.format_duration),
            }),
            hide_index=True, width="stretch", key="transitions_table",
        )


if __name__ == "__main__":
    render()
