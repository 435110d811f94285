"""Where a cold dashboard visit's time goes: tiny Streamlit pages, one element each, timed in
Chromium the way ``bench_browser.py`` times the dashboard's pages (a fresh browser context per
visit, until the page is idle with its content drawn).

    python bench/bench_browser_parts.py [--runs 5] [--parts empty,dataframe,...]
    python bench/bench_browser_parts.py --messages http://127.0.0.1:8501/stalled_sagas "Stalled"

One Streamlit app (served with the dashboard's options) draws, by its ``?part=`` query, an
empty page or that page plus one element: a 20-row ``st.dataframe`` (the glide data grid), a
Plotly chart, a Vega-Lite chart, a Graphviz chart, a 20-row HTML table (``st.html``), the
dashboard's sidebar and page chrome without their queries (page config with a drawn favicon,
eight pages with icons, two pickers, a toggle, a ``run_every`` fragment), and so on. Every
part is measured in the same run, interleaved, so the machine's load falls on all of them
alike; the table gives each part's median and its cost over the empty page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_browser

PART_APP = textwrap.dedent('''
    import pandas as pd
    import streamlit as st

    part = st.query_params.get("part", "empty")
    rows = pd.DataFrame({"saga": [f"order-{i}" for i in range(20)],
                         "status": ["completed"] * 20, "messages": list(range(20))})

    def body() -> None:
        if part == "chrome":
            from sagascope.dashboard import chrome
            chrome.page_setup("Part")
            with st.sidebar:
                st.markdown("### :material/travel_explore: sagascope")
                st.selectbox("Time range", ["Last hour", "All time"])
                st.selectbox("Saga type", ["All saga types", "order"])
                st.toggle("Refresh when new data arrives", value=True)
            st.fragment(run_every=5)(lambda: None)()
        if part == "dataframe":
            st.dataframe(rows, hide_index=True)
        if part == "dataframe_select":
            st.dataframe(rows, hide_index=True, on_select="rerun", selection_mode="single-row",
                         key="grid")
        if part == "plotly":
            import plotly.graph_objects as go
            st.plotly_chart(go.Figure(go.Bar(x=list(range(20)), y=list(range(20)))))
        if part == "vega":
            st.vega_lite_chart({"mark": "bar", "data": {"values": rows.to_dict("records")},
                                "encoding": {"x": {"field": "saga", "type": "nominal"},
                                             "y": {"field": "messages", "type": "quantitative"}}})
        if part == "graphviz":
            st.graphviz_chart("digraph { a -> b; b -> c; a -> c }")
        if part == "html_table":
            st.html(rows.to_html(index=False))
        if part == "markdown_table":
            st.markdown(rows.to_markdown(index=False) if hasattr(rows, "to_markdown") else "")
        if part == "chrome_links":
            from sagascope.dashboard import chrome
            st.set_page_config(page_title="Part · sagascope", page_icon=chrome.favicon(),
                               layout="wide", initial_sidebar_state="expanded")
            st.markdown(chrome._CSS, unsafe_allow_html=True)
            with st.sidebar:
                st.markdown("### sagascope")
                st.markdown("".join(f'<a href="?part=chrome_links&range={r}">{r}</a> '
                                    for r in ("15m", "1h", "6h", "24h", "all")),
                            unsafe_allow_html=True)
                st.markdown("".join(f'<a href="?part=chrome_links&type={t}">{t}</a> '
                                    for t in ("all", "order", "refund")),
                            unsafe_allow_html=True)
            st.fragment(run_every=5)(lambda: None)()
        if part == "markdown_html":
            st.markdown(rows.to_html(index=False).replace(chr(10), ""), unsafe_allow_html=True)
        if part == "tiles_html":
            st.markdown("".join(f'<a href="two"><div><p>Tile {n}</p><b>{n * 100:,}</b></div></a>'
                                for n in range(6)), unsafe_allow_html=True)
        if part == "columns":
            for col, n in zip(st.columns(6), range(6)):
                col.markdown(f"Tile {n}")
        if part == "segmented":
            st.segmented_control("Percentile", ["p50", "p95", "p99"], default="p95")
        if part == "tabs":
            a, b = st.tabs(["One", "Two"])
            a.markdown("in a tab")
        if part == "expander":
            with st.expander("More"):
                st.markdown("inside")
        if part == "info":
            st.info("A note")
        if part == "material_icon":
            st.markdown("### :material/travel_explore: sagascope")
        if part == "metrics":
            for col, n in zip(st.columns(6), range(6)):
                col.metric(f"Tile {n}", f"{n * 100:,}")
                col.page_link(page_two, label="List them", icon=":material/list:")
        st.write("Part drawn")

    def two() -> None:
        st.write("Page two")

    pages = [st.Page(body, title="One", default=True)]
    page_two = st.Page(two, title="Two", url_path="two")
    pages.append(page_two)
    if part == "chrome":
        pages += [st.Page(two, title=f"Page {i}", url_path=f"p{i}", icon=":material/list:")
                  for i in range(6)]
    st.navigation(pages).run()
''')

PARTS = ["empty", "chrome", "metrics", "dataframe", "dataframe_select", "plotly", "vega",
         "graphviz", "html_table", "chrome_links", "markdown_html", "tiles_html", "columns",
         "segmented", "tabs", "expander", "info", "material_icon"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--messages", nargs=2, metavar=("URL", "TEXT"),
                        help="instead: count one cold visit's websocket messages of a running "
                        "dashboard page, before it is idle showing TEXT and for 12 s after")
    args = parser.parse_args(argv)
    if args.messages:
        print(count_messages(args.messages[0], args.messages[1], after_s=12.0))
        return 0
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    from playwright.sync_api import sync_playwright

    workdir = tempfile.mkdtemp(prefix="bench-parts-")
    times: dict[str, list[float]] = {p: [] for p in parts}
    load_before = os.getloadavg()
    with sync_playwright() as p, bench_browser.served_app(workdir, PART_APP) as app:
        browser = p.chromium.launch(executable_path=bench_browser.CHROMIUM,
                                    args=bench_browser.CHROMIUM_ARGS)
        for run in range(args.runs + 1):  # the first round warms the server, not counted
            for part in parts:
                took = bench_browser.cold_visit(browser, f"{app.url}/?part={part}", "Part drawn")
                if run:
                    times[part].append(took)
        browser.close()
    load = os.getloadavg()
    floor = statistics.median(times["empty"]) if "empty" in times else 0.0
    print(f"cold visits, median of {args.runs}; load average {load_before[0]:.1f} before, "
          f"{load[0]:.1f} after")
    print(f"{'part':<18}{'cold':>7}{'- empty':>9}{'min':>7}{'max':>7}")
    for part, values in times.items():
        median = statistics.median(values)
        print(f"{part:<18}{median:>7.2f}{median - floor:>+9.2f}{min(values):>7.2f}"
              f"{max(values):>7.2f}")
    return 0


def count_messages(url: str, text: str, after_s: float) -> dict[str, Any]:
    """Websocket frames of one cold visit: before the page is idle, and in ``after_s`` after."""
    from playwright.sync_api import sync_playwright

    frames: list[tuple[float, str, int]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=bench_browser.CHROMIUM,
                                    args=bench_browser.CHROMIUM_ARGS)
        context = browser.new_context(viewport=bench_browser.VIEWPORT)
        page = context.new_page()
        page.on("websocket", lambda ws: (
            ws.on("framesent", lambda f: frames.append((time.perf_counter(), "sent", len(f)))),
            ws.on("framereceived",
                  lambda f: frames.append((time.perf_counter(), "received", len(f))))))
        started = time.perf_counter()
        page.goto(url)
        bench_browser.wait_idle(page, text)
        idle = time.perf_counter()
        page.wait_for_timeout(after_s * 1000)
        context.close()
        browser.close()
    before = [f for f in frames if f[0] <= idle]
    after = [f for f in frames if f[0] > idle]
    return {"idle_s": idle - started,
            "sent_before": sum(1 for f in before if f[1] == "sent"),
            "received_before": sum(1 for f in before if f[1] == "received"),
            "sent_after": sum(1 for f in after if f[1] == "sent"),
            "received_after": sum(1 for f in after if f[1] == "received"),
            "first_sent_after_s": [round(f[0] - started, 2) for f in frames if f[1] == "sent"]}


if __name__ == "__main__":
    sys.exit(main())
