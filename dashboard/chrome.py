"""What every page shares around its content: style, favicon and tab title, the sidebar's
global filters, the data's watermark, live refresh, and friendly errors.

Live refresh: a page runs once per visit or click. A small fragment checks the store's
watermark every ``dashboard.refresh_s`` (one cheap query per process at most every
:func:`~sagascope.dashboard.cached_queries.watermark_max_age_s`) and reruns the page only when
it moved; on a store where nothing changes, nothing else is asked. While a rerun redraws,
the previous content stays readable (never greyed out) and is replaced in place.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from sagascope.dashboard import (
    cached_queries,
    choice_links,
    freshness,
    html_form,
    runtime,
    tiles,
    url_state,
)
from sagascope.dashboard.cached_queries import ask, data_as_of
from sagascope.dashboard.figures import STATUS_COLORS
from sagascope.exceptions import SagascopeError
from sagascope.store import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

_CSS = """
<style>
  .block-container {padding: 2.2rem 2.5rem 2rem 2.5rem; max-width: 1500px;}
  div[data-testid="stMetric"] {background: #f8f9fb; border: 1px solid #e9ecef;
      border-radius: 10px; padding: 10px 14px;}
  div[data-testid="stMetricLabel"] p {color: #5c6370; font-size: 0.85rem;}
  .saga-badge {display: inline-block; padding: 2px 10px; border-radius: 999px;
      color: white; font-weight: 600; font-size: 0.85rem;}
  .why-box {border-left: 4px solid #868e96; background: #f8f9fb; padding: 8px 14px;
      border-radius: 6px; margin: 6px 0 12px 0;}
  /* A rerun replaces the page's content in place: what is on screen stays readable until
     then, never greyed out (Streamlit dims "stale" elements while a script runs). */
  [data-stale="true"] {opacity: 1 !important; transition: none !important;}
  /* Plain tables (tables.html_table): a whole row is one link, in this tab. */
  /* A flow's messages, each opened in place (flow_explorer.message_details). */
  .sg-messages details {border-bottom: 1px solid #f1f3f5; padding: 4px 0;}
  .sg-messages summary {cursor: pointer; font-size: 0.9rem;}
  .sg-msg {display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; margin: 6px 0 8px 0;}
  .sg-msg .sg-pre {background: #f8f9fb; border-radius: 6px; padding: 8px 10px; font-size: 0.8rem;
      font-family: "Source Code Pro", ui-monospace, monospace; white-space: pre-wrap;
      word-break: break-all; max-height: 24rem; overflow: auto;}
  .sg-msg-error {color: #c92a2a;}
  .sg-table-wrap {overflow-x: auto; border: 1px solid #e9ecef; border-radius: 8px;}
  .sg-table-wrap.sg-scroll {max-height: 38rem; overflow-y: auto;}
  .sg-table {border-collapse: collapse; width: 100%; font-size: 0.875rem;}
  .sg-table th {position: sticky; top: 0; background: #f8f9fb; color: #5c6370;
      font-weight: 600; text-align: left; white-space: nowrap;}
  .sg-table th, .sg-table td {padding: 6px 10px; border-bottom: 1px solid #f1f3f5;}
  .sg-table td {white-space: nowrap; max-width: 28rem; overflow: hidden;
      text-overflow: ellipsis;}
  .sg-table .num {text-align: right; font-variant-numeric: tabular-nums;}
  .sg-table.sg-links td {padding: 0;}
  .sg-table.sg-links td a {display: block; padding: 6px 10px; color: inherit;
      text-decoration: none;}
  .sg-table.sg-links tr:hover td {background: #edf2ff; cursor: pointer;}
  .sg-table.sg-links td.key a {color: #3b5bdb; font-weight: 500;}
  /* The data grid's toolbar floats above the grid, not over the content above it. */
  div[data-testid="stElementToolbar"] {top: -2.1rem;}
""" + tiles.CSS + choice_links.CSS + html_form.CSS + """
</style>
"""


def style() -> None:
    st.html(_CSS)


@functools.cache
def favicon() -> Any:
    """The tab icon, drawn here: a favicon must not be fetched from the internet."""
    from PIL import Image, ImageDraw

    icon = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.rounded_rectangle((2, 2, 62, 62), radius=14, fill="#3b5bdb")
    for y, width in ((18, 34), (32, 24), (46, 14)):  # a flow's steps, shrinking: a waterfall
        draw.rounded_rectangle((12 + (34 - width), y - 5, 12 + 34, y + 5), radius=4,
                               fill="white")
    return icon


def page_setup(title: str) -> None:
    """Tab title ("<page> · sagascope"), local favicon, wide layout, the house style."""
    st.set_page_config(page_title=f"{title} · sagascope", page_icon=favicon(), layout="wide",
                       initial_sidebar_state="expanded")
    style()


# ---- the watermark -----------------------------------------------------------------------


def read_watermark() -> None:
    """Read the store's watermark once per run; cached answers are keyed by it."""
    try:
        as_of = data_as_of()
    except StoreUnavailable as exc:
        st.session_state["_store_down"] = str(exc)
        st.session_state["_data_as_of"] = None
        return
    st.session_state.pop("_store_down", None)
    st.session_state["_data_as_of"] = as_of
    if as_of is not None and "_data_since" not in st.session_state:
        try:
            st.session_state["_data_since"] = ask().data_since()
        except StoreError as exc:
            log.warning("dashboard data_since failed: %s", exc)


def data_as_of_line() -> None:
    """"Data as of" at the top of the page body, and a warning when the data is stale."""
    if st.session_state.get("_store_down"):
        return  # the page itself says the store cannot be reached
    as_of = st.session_state.get("_data_as_of")
    freshness.show(cached_queries.freshness, as_of if isinstance(as_of, datetime) else None,
                   runtime.settings().dashboard.stale_after_s)


# ---- the sidebar -------------------------------------------------------------------------

#: A page that needs one saga type sets this; the sidebar takes it on the next run.
PENDING_TYPE = "_pending_saga_type"
#: The live-refresh switch in the URL: ``?live=0`` pauses it (on by default).
LIVE = "live"
#: Saga types shown as links before they fold into a ``<details>`` (a long list would push
#: the refresh link off screen).
SHOWN_TYPES = 8
_DRAWN_WITH = "_sidebar_drawn_with"
_DRAWN_HTML = "_sidebar_drawn_html"
_FULL_RUN = "_full_run"
_SIDEBAR_PARAMS = {"range": url_state.DEFAULT_TIME_RANGE, "type": url_state.ALL, LIVE: "1"}


def sidebar() -> None:
    """The global filters (time range, saga type) and the live-refresh switch, in the URL.

    Plain links, not widgets: Streamlit loads each widget type's scripts on a first visit
    (the sidebar's select boxes and toggle cost +0.24 s over an empty page, links +0.11, quiet
    machine, ``bench_browser_parts.py``). A link opens this page in this tab with one
    parameter changed and every other one kept. They are drawn by :func:`run_page` after the
    page ran, so they carry the parameters the page wrote to the URL.
    """
    type_key = url_state.url_bound("type", url_state.ALL)
    if PENDING_TYPE in st.session_state:
        st.session_state[type_key] = st.session_state.pop(PENDING_TYPE)
    range_key = url_state.url_bound("range", url_state.DEFAULT_TIME_RANGE)
    if st.session_state.get(range_key) not in url_state.TIME_RANGES:
        st.session_state[range_key] = url_state.DEFAULT_TIME_RANGE
    url_state.url_bound(LIVE, "1")
    url_state.sync_url(_SIDEBAR_PARAMS)
    # Each block shows what it showed at the end of the last run until this run redraws it:
    # a live rerun never blanks the sidebar while the page's queries run.
    shown = st.session_state.get(_DRAWN_HTML, ("", ""))
    with st.sidebar:
        st.session_state["_sidebar_ranges"] = _slot(shown[0])
        _fixed_range_inputs()
        st.session_state["_sidebar_rest"] = _slot(shown[1])


def _slot(markup: str) -> Any:
    slot = st.empty()
    if markup:
        slot.markdown(markup, unsafe_allow_html=True)
    return slot


def _fixed_range_inputs() -> None:
    """From/Until, only while the range is fixed; outside it the URL carries neither."""
    fixed = url_state.time_range() == "fixed"
    if not fixed:
        for param in (url_state.SINCE, url_state.UNTIL):
            st.query_params.pop(param, None)
        return
    since_key = url_state.url_bound(url_state.SINCE)
    until_key = url_state.url_bound(url_state.UNTIL)
    left, right = st.columns(2)
    left.text_input("From (UTC)", key=since_key, placeholder="2026-12-07 08:00")
    right.text_input("Until (UTC)", key=until_key, placeholder="now")
    for key in (since_key, until_key):
        if st.session_state.get(key) and url_state.parse_time(str(st.session_state[key])) is None:
            st.warning(f"Not a time: {st.session_state[key]!r} (e.g. 2026-12-07 08:00).")
    url_state.sync_url({url_state.SINCE: "", url_state.UNTIL: ""})


def live_refresh() -> bool:
    """Whether the page reruns by itself when new data arrives (``?live=0`` pauses it)."""
    return url_state.value(LIVE) != "0"


def _draw_choice_links() -> None:
    """Fill the sidebar's link blocks with the URL as the page left it."""
    ranges, rest = (st.session_state.pop(k, None) for k in ("_sidebar_ranges", "_sidebar_rest"))
    if ranges is None or rest is None:
        return
    current = st.query_params.to_dict()
    st.session_state[_DRAWN_WITH] = current
    markup = (choice_links.range_links(current, _fixed_window()),
              choice_links.type_links(current, _safe_saga_types(), SHOWN_TYPES)
              + choice_links.live_link(current, runtime.settings().dashboard.refresh_s))
    st.session_state[_DRAWN_HTML] = markup
    ranges.markdown(markup[0], unsafe_allow_html=True)
    rest.markdown(markup[1], unsafe_allow_html=True)


def _fixed_window() -> dict[str, str]:
    """The since/until a "Fixed" link carries: the window shown now, to the minute, so a shared
    link keeps showing it (a fixed range already chosen keeps its own)."""
    if url_state.time_range() == "fixed":
        return {url_state.SINCE: url_state.value(url_state.SINCE),
                url_state.UNTIL: url_state.value(url_state.UNTIL)}
    window = url_state.TIME_RANGES[url_state.time_range()][1]
    end = url_state.anchor()
    start = end - window if window is not None else st.session_state.get("_data_since")
    pinned = {url_state.UNTIL: _minute(end, up=True)}
    if isinstance(start, datetime):
        pinned[url_state.SINCE] = _minute(start)
    return pinned


def _minute(moment: datetime, *, up: bool = False) -> str:
    """The minute holding ``moment`` (``up``: the next one, so the range covers it)."""
    minute = moment.astimezone(UTC).replace(second=0, microsecond=0)
    return (minute + timedelta(minutes=1 if up else 0)).strftime("%Y-%m-%d %H:%M")


def _safe_saga_types() -> list[str]:
    try:
        return ask().saga_types()
    except StoreError as exc:
        log.warning("dashboard saga_types failed: %s", exc)
        return []


# ---- running a page: live data, friendly errors -------------------------------------------


def run_page(page: Any) -> None:
    """Run the selected page; store trouble becomes a message, not a traceback. Then draw the
    sidebar's links, with the parameters the page wrote to the URL."""
    st.session_state[_FULL_RUN] = True
    data_as_of_line()
    guarded(page.run)
    _draw_choice_links()
    st.session_state[_FULL_RUN] = False


def guarded(body: Callable[[], None]) -> None:
    try:
        body()
    except StoreUnavailable as exc:
        st.warning(f"The store cannot be reached right now; retrying on the next refresh. "
                   f"({exc})", icon=":material/cloud_off:")
    except SagascopeError as exc:
        log.exception("dashboard page failed")
        st.error(f"This page could not be shown: {exc}", icon=":material/error:")


def live(render: Callable[[], None]) -> None:
    """Run a page's ``render`` (a fragment: its own clicks rerun only it), and rerun the page
    when the store's watermark moves (see the module docstring), unless ``?live=0``."""
    st.fragment(_render_in_place)(render)
    if live_refresh():
        st.fragment(run_every=runtime.settings().dashboard.refresh_s)(_rerun_on_new_data)()


def _render_in_place(render: Callable[[], None]) -> None:
    guarded(render)
    # A click inside the page that changed its URL (a filter) reran only this fragment: the
    # whole page reruns once, so the sidebar's links carry the new parameters too.
    if (not st.session_state.get(_FULL_RUN, True)
            and st.query_params.to_dict() != st.session_state.get(_DRAWN_WITH)):
        st.rerun()


def _rerun_on_new_data() -> None:
    try:
        latest = data_as_of()
    except StoreUnavailable as exc:
        if not st.session_state.get("_store_down"):
            st.session_state["_store_down"] = str(exc)
            st.rerun()
        return
    if latest != st.session_state.get("_data_as_of") or st.session_state.get("_store_down"):
        st.rerun()


def empty_store_notice() -> bool:
    """Say so and return True when the store holds no messages at all."""
    if st.session_state.get("_data_as_of") is not None:
        return False
    if st.session_state.get("_store_down"):
        st.warning("The store cannot be reached right now; this page retries on the next "
                   f"refresh. ({st.session_state['_store_down']})", icon=":material/cloud_off:")
        return True
    st.info(
        "No saga messages stored yet. Start the collector (`sagascope collect`) or the demo "
        "(`sagascope demo`), and this page fills in as messages arrive.",
        icon=":material/inbox:",
    )
    return True


def status_badge(status: str) -> str:
    color = STATUS_COLORS.get(status, "#495057")
    return f'<span class="saga-badge" style="background:{color}">{html.escape(status)}</span>'
