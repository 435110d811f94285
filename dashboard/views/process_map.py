"""Process map: one saga type's directly-follows graph, laid out and drawn as SVG on the
server (:mod:`process_graph`: no graph script for the browser to load), and its variants.

Each step links to the saga list filtered to it; the live counts say how many sagas wait or
stall at each step right now. Plain links and HTML only: every widget type a page shows
costs a first visit its own scripts.
"""

from __future__ import annotations

from html import escape

import pandas as pd
import streamlit as st

from sagascope.dashboard import charts, chrome, figures, links, tables, tiles, url_state
from sagascope.dashboard.cached_queries import ask
from sagascope.dashboard.process_graph import process_map_svg
from sagascope.queries import ProcessMap, SagaFilter

VARIANT_LIMIT = 20
_OVERLAYS = {"frequency": "Frequency", "duration": "Duration (median · p95)"}


def variants_table(variants: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "variant": [f"V{i + 1}" for i in range(len(variants))],
        "sagas": variants["count"],
        "share": [f"{share:.1%}" for share in variants["share"]],
        "median cycle time": variants["median_cycle_s"].map(figures.format_duration),
        "path": [" → ".join(map(str, a)) for a in variants["activities"]],
    })


def steps_table(nodes: pd.DataFrame, live: dict[str, dict[str, int]], saga_type: str,
                time_range: str) -> pd.DataFrame:
    """Each step with its counts and links to its sagas (passed through, stalled there)."""
    return pd.DataFrame({
        "step": nodes["activity"],
        "sagas": nodes["sagas"],
        "times": nodes["count"],
        "waiting now": [_waiting(live.get(a, {})) for a in nodes["activity"]],
        "stalled now": [live.get(a, {}).get("stalled", 0) for a in nodes["activity"]],
        "sagas through it": [links.sagas_url(type=saga_type, step=a, range=time_range)
                             for a in nodes["activity"]],
        "stalled here": [links.sagas_url(type=saga_type, at=a, status="stalled", range="all")
                         for a in nodes["activity"]],
    })


PENDING_TYPE = chrome.PENDING_TYPE


def _waiting(counts: dict[str, int]) -> int:
    """Unfinished sagas not (yet) stalled: running ones and those compensating."""
    return int(counts.get("running", 0)) + int(counts.get("compensating", 0))


def _choose_type() -> str | None:
    """One saga type at a time, the sidebar's: with none chosen there, its first type.

    One picker (the sidebar's), so the map and every other page agree on the type.
    """
    chosen = url_state.saga_type()
    if chosen:
        return chosen
    types = ask().saga_types()
    if not types:
        return None
    # The sidebar's widget is drawn already in this run: it takes the type on the next.
    st.session_state[PENDING_TYPE] = types[0]
    st.rerun()
    return None


def _choose_overlay() -> str:
    """The arrows' overlay (frequency or duration), from the URL; links switch it."""
    chosen = str(st.query_params.get("overlay", "frequency"))
    overlay = chosen if chosen in _OVERLAYS else "frequency"
    choices = []
    for name, label in _OVERLAYS.items():
        if name == overlay:
            choices.append(f"<b>{escape(label)}</b>")
        else:
            href = links.page_url("process_map", **url_state.sidebar_params(), overlay=name)
            choices.append(f'<a href="{escape(href)}" target="_self">{escape(label)}</a>')
    st.markdown(f'<div class="pm-overlay">Arrows show: {" · ".join(choices)}</div>',
                unsafe_allow_html=True)
    return overlay


def _map(graph: ProcessMap, live: dict[str, dict[str, int]], saga_type: str, overlay: str,
         time_range: str) -> None:
    """The counts above the map and the map itself, every step and arrow a link."""
    tiles.tiles([
        tiles.Tile("Sagas", graph.sagas),
        tiles.Tile("Steps", len(graph.nodes)),
        tiles.Tile("Waiting now", sum(_waiting(c) for c in live.values()),
                   help="running or compensating sagas whose last message was of that step"),
        tiles.Tile("Stalled now", sum(c.get("stalled", 0) for c in live.values())),
    ])
    drawn = process_map_svg(
        tables.frame(graph.nodes), tables.frame(graph.edges), overlay=overlay, live=live,
        node_link=lambda a: links.sagas_url(type=saga_type, step=a, range=time_range),
        edge_link=lambda a, b: links.sagas_url(**{"type": saga_type, "from": a, "to": b,
                                              "range": time_range}),
    )
    # SVG drawn here, shown as Markdown (st.html strips SVG).
    st.markdown(drawn, unsafe_allow_html=True)
    st.caption("Each step and arrow says how many sagas passed through it (and how often, "
               "when some did more than once): click a step to open those sagas, an arrow to "
               "open the sagas that took it; arrows pointing up are loops back. Orange steps "
               "have stalled sagas right now (live, whatever the time range).")


def _steps(nodes: pd.DataFrame, live: dict[str, dict[str, int]], saga_type: str,
           time_range: str) -> None:
    """The steps table; a step opens its stalled sagas, else those through it."""
    st.subheader("Steps")
    table = steps_table(nodes, live, saga_type, time_range)
    opens = [stalled if int(n) else through for n, stalled, through in zip(
        table["stalled now"], table["stalled here"], table["sagas through it"], strict=True)]
    st.html(tables.html_table(
        table.drop(columns=["sagas through it", "stalled here"]), key="step", label="Steps",
        numeric=("sagas", "times", "waiting now", "stalled now"), row_link=lambda i: opens[i]))
    st.caption("Click a step to list the sagas stalled there (or, with none stalled, the "
               "sagas that passed through it).")


def _variants(filters: SagaFilter) -> None:
    """The most frequent paths: a bar chart, a table, and each path in full."""
    st.subheader("Variants")
    variants = tables.frame(ask().variants(filters, VARIANT_LIMIT, by="step"))
    if variants.empty:
        st.caption("No variants.")
        return
    st.markdown(charts.variant_bars(variants), unsafe_allow_html=True)
    st.html(tables.html_table(variants_table(variants), numeric=("sagas",), label="Variants"))
    paths = "".join(
        f"<li><b>V{i}</b> · {int(row['count']):,} sagas · "
        + " → ".join(f"<code>{escape(str(a))}</code>" for a in row["activities"]) + "</li>"
        for i, row in enumerate(variants.to_dict("records"), start=1))
    st.markdown(f"<details><summary>Variant paths in full</summary><ul>{paths}</ul></details>",
                unsafe_allow_html=True)


def _transition_times(edges: pd.DataFrame) -> None:
    st.subheader("Transition times")
    table = edges.sort_values("count", ascending=False)
    st.html(tables.html_table(pd.DataFrame({
        "from": table["source"], "to": table["target"], "count": table["count"],
        "median": table["median_s"].map(figures.format_duration),
        "p95": table["p95_s"].map(figures.format_duration),
    }), numeric=("count",), label="Transition times"))


def render() -> None:
    st.title("Process map")
    if chrome.empty_store_notice():
        return
    saga_type = _choose_type()
    if saga_type is None:
        st.caption("No saga types yet.")
        return
    overlay = _choose_overlay()
    filters = url_state.current_filter(saga_type=saga_type)
    answers = ask()
    graph = answers.process_map(filters, by="step")
    if not graph.edges:
        st.caption(f"No transitions of {saga_type} in this range yet.")
        return
    live = answers.waiting_by_step(SagaFilter(saga_type=saga_type))
    time_range = str(st.session_state.get(url_state.url_key("range"), ""))
    _map(graph, live, saga_type, overlay, time_range)
    _steps(tables.frame(graph.nodes), live, saga_type, time_range)
    _variants(filters)
    _transition_times(tables.frame(graph.edges))


if __name__ == "__main__":
    chrome.live(render)
