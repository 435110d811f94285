"""What every page shares: the query layer, the global filters, "data as of", friendly errors."""

from __future__ import annotations

import dataclasses
import html
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st
from sagascope.dashboard import runtime
from sagascope.queries import SagaFilter, SagaQueries, flow_link
from sagascope.store import StoreError, StoreUnavailable

from sagascope.exceptions import SagascopeError

log = logging.getLogger(__name__)

#: Time-range choices of the sidebar; None is "all time".
TIME_RANGES: dict[str, timedelta | None] = {
    "Last 15 minutes": timedelta(minutes=15),
    "Last hour": timedelta(hours=1),
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    "All time": None,
}
DEFAULT_TIME_RANGE = "Last hour"
ALL_TYPES = "All saga types"

_CSS = """
<style>
  .block-container {padding-top: 2.2rem; padding-bottom: 2rem; max-width: 1500px;}
  div[data-testid="stMetric"] {background: #f8f9fb; border: 1px solid #e9ecef;
      border-radius: 10px; padding: 10px 14px;}
  div[data-testid="stMetricLabel"] p {color: #5c6370; font-size: 0.85rem;}
  .saga-badge {display: inline-block; padding: 2px 10px; border-radius: 999px;
      color: white; font-weight: 600; font-size: 0.85rem;}
</style>
"""


def style() -> None:
    st.html(_CSS)


@st.cache_resource(show_spinner=False)
def _queries_for(_store: Any, store_key: int, rules_key: str) -> SagaQueries:
    current = runtime.settings()
    return SagaQueries.from_settings(
        _store, current.alerts, hide_payloads=current.dashboard.hide_payloads
    )


def queries() -> SagaQueries:
    """The query layer over the runtime's store, one per store and settings."""
    current = runtime.store()
    return _queries_for(current, id(current), repr(runtime.settings().alerts))


#: How long a query result is reused: reruns within it (clicks, page switches) cost nothing.
RESULT_TTL_S = 10.0
#: Auto-refresh reruns the page when new data arrived, and at least this often (stalls grow
#: with silence, when no new data arrives at all).
MAX_REFRESH_INTERVAL_S = 60.0


@st.cache_data(ttl=RESULT_TTL_S, max_entries=512, show_spinner=False)
def _cached(_queries: SagaQueries, store_key: int, as_of: datetime | None, method: str,
            args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> Any:
    return getattr(_queries, method)(*args, **dict(kwargs))


def ask(method: str, *args: Any, **kwargs: Any) -> Any:
    """``queries().<method>(*args, **kwargs)``, reused for the same data for a few seconds."""
    return _cached(queries(), id(runtime.store()), st.session_state.get("_data_as_of"), method,
                   args, tuple(sorted(kwargs.items())))


def current_filter(**extra: Any) -> SagaFilter:
    """The sidebar's time range and saga type as a ``SagaFilter`` (plus ``extra`` fields)."""
    window = TIME_RANGES.get(st.session_state.get("time_range", DEFAULT_TIME_RANGE))
    saga_type = st.session_state.get("saga_type", ALL_TYPES)
    time_from = None
    if window is not None:
        time_from = _anchor() - window
    return SagaFilter(
        time_from=time_from,
        saga_type=None if saga_type in (None, ALL_TYPES) else saga_type,
        **extra,
    )


def _anchor() -> datetime:
    """Ranges end at the newest data, so a replayed historical log shows its own last hour."""
    as_of = st.session_state.get("_data_as_of")
    now = datetime.now(UTC)
    if isinstance(as_of, datetime) and as_of < now:
        return as_of
    return now


def sidebar() -> None:
    """The global filters, auto-refresh and the "data as of" time."""
    dashboard = runtime.settings().dashboard
    with st.sidebar:
        st.markdown("### :material/travel_explore: sagascope")
        st.selectbox("Time range", list(TIME_RANGES), key="time_range",
                     index=list(TIME_RANGES).index(DEFAULT_TIME_RANGE))
        types = [ALL_TYPES, *_saga_types()]
        if st.session_state.get("saga_type") not in types:
            st.session_state["saga_type"] = ALL_TYPES
        st.selectbox("Saga type", types, key="saga_type")
        auto = st.toggle(f"Auto-refresh every {dashboard.refresh_s:g} s", value=True,
                         key="auto_refresh")
        as_of = _data_as_of()
        st.session_state["_data_as_of"] = as_of
        st.session_state["_data_as_of_seen"] = as_of
        st.session_state["_rendered_at"] = time.monotonic()
        st.fragment(run_every=dashboard.refresh_s if auto else None)(_as_of_box)()


def _as_of_box() -> None:
    as_of = _data_as_of()
    if st.session_state.get("auto_refresh"):
        age_s = time.monotonic() - float(st.session_state.get("_rendered_at", 0.0))
        if as_of != st.session_state.get("_data_as_of_seen") or age_s > MAX_REFRESH_INTERVAL_S:
            st.rerun(scope="app")
    text = as_of.strftime("%Y-%m-%d %H:%M:%S UTC") if as_of else "no data yet"
    st.caption(f":material/schedule: Data as of **{text}**")


def _data_as_of() -> datetime | None:
    try:
        value = queries().data_as_of()
    except StoreUnavailable as exc:
        st.session_state["_store_down"] = str(exc)
        return None
    except StoreError as exc:
        # A database without sagascope's tables yet: nothing collected so far.
        log.warning("dashboard data_as_of failed: %s", exc)
        return None
    st.session_state.pop("_store_down", None)
    return value if isinstance(value, datetime) else None


@st.cache_data(ttl=600, show_spinner=False)
def _saga_types_for(_queries: SagaQueries, store_key: int) -> list[str]:
    lister = getattr(_queries, "saga_types", None)
    if lister is not None:
        return sorted(str(t) for t in lister())
    # Without a saga_types() query: the types with finished sagas (first row is all types).
    return sorted({str(c.saga_type) for c in _queries.cycle_times(None) if c.saga_type != "*"})


def _saga_types() -> list[str]:
    try:
        return _saga_types_for(queries(), id(runtime.store()))
    except StoreError as exc:
        log.warning("dashboard saga_types failed: %s", exc)
        return []


def run_page(page: Any) -> None:
    """Run the selected page; store trouble becomes a message, not a traceback."""
    try:
        page.run()
    except StoreUnavailable as exc:
        st.warning(f"The store cannot be reached right now; retrying on the next refresh. "
                   f"({exc})", icon=":material/cloud_off:")
    except SagascopeError as exc:
        log.exception("dashboard page failed")
        st.error(f"This page could not be shown: {exc}", icon=":material/error:")


def flow_url(saga_id: str) -> str:
    """Relative link to a saga's flow (the deep link alerts point to)."""
    return flow_link("", saga_id)


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
    from sagascope.dashboard.figures import STATUS_COLORS

    color = STATUS_COLORS.get(status, "#495057")
    return f'<span class="saga-badge" style="background:{color}">{html.escape(status)}</span>'


def frame(results: Any) -> pd.DataFrame:
    """Query results (a list of dataclasses) as a DataFrame with the dataclasses' fields."""
    items = list(results)
    if not items:
        return pd.DataFrame()
    first = items[0]
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        # Column by column: dataclasses.asdict deep-copies every row, slow for 10k+ results.
        names = [f.name for f in dataclasses.fields(first)]
        return pd.DataFrame({name: [getattr(r, name) for r in items] for name in names})
    return pd.DataFrame([dict(r) for r in items])


def bucket_seconds() -> int:
    """Bucket width for charts over time: a minute, or wider for long ranges (~120 points)."""
    window = TIME_RANGES.get(st.session_state.get("time_range", DEFAULT_TIME_RANGE))
    if window is None:
        return 3600
    for width in (60, 300, 900, 3600, 6 * 3600, 86400):
        if window.total_seconds() / width <= 180:
            return width
    return 86400


def describe_bucket(width_s: int) -> str:
    return f"{width_s // 60} min" if width_s < 3600 else f"{width_s // 3600} h"
