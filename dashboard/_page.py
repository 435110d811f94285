"""What every page shares: the typed, cached query layer, filters kept in the URL, chrome.

Pages ask questions through :class:`CachedQueries` (one method per question, each cached with
``st.cache_data`` for the same data), never by method name. Every filter a page shows lives in
the URL (``st.query_params``), so a view can be shared and reloaded.
"""

from __future__ import annotations

import dataclasses
import html
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st
from sagascope.dashboard import freshness, runtime
from sagascope.queries import (
    Alert,
    CompensationSummary,
    CycleTimeStats,
    FailureCount,
    Flow,
    ProcessMap,
    SagaDiagnosis,
    SagaFilter,
    SagaPage,
    SagaQueries,
    StalledSaga,
    StepTime,
    ThroughputPoint,
    Variant,
    flow_link,
)
from sagascope.store import StoreError, StoreUnavailable

from sagascope.exceptions import SagascopeError

log = logging.getLogger(__name__)

#: Time-range choices of the sidebar (URL value -> label, window); None is "all time".
TIME_RANGES: dict[str, tuple[str, timedelta | None]] = {
    "15m": ("Last 15 minutes", timedelta(minutes=15)),
    "1h": ("Last hour", timedelta(hours=1)),
    "6h": ("Last 6 hours", timedelta(hours=6)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "all": ("All time", None),
}
DEFAULT_TIME_RANGE = "1h"
ALL = ""
#: Where each page lives (its URL path).
FLOW_PAGE = "views/flow_explorer.py"
SAGAS_PAGE = "views/sagas.py"

_CSS = """
<style>
  .block-container {padding-top: 2.2rem; padding-bottom: 2rem; max-width: 1500px;}
  div[data-testid="stMetric"] {background: #f8f9fb; border: 1px solid #e9ecef;
      border-radius: 10px; padding: 10px 14px;}
  div[data-testid="stMetricLabel"] p {color: #5c6370; font-size: 0.85rem;}
  .saga-badge {display: inline-block; padding: 2px 10px; border-radius: 999px;
      color: white; font-weight: 600; font-size: 0.85rem;}
  .why-box {border-left: 4px solid #868e96; background: #f8f9fb; padding: 8px 14px;
      border-radius: 6px; margin: 6px 0 12px 0;}
</style>
"""

#: How long a query result is reused for the same data: reruns within it cost nothing.
RESULT_TTL_S = 30.0


def style() -> None:
    st.html(_CSS)


# ---- the query layer, typed and cached ----------------------------------------------------


@st.cache_resource(show_spinner=False)
def _queries_for(_store: Any, store_key: int, rules_key: str) -> SagaQueries:
    current = runtime.settings()
    return SagaQueries.from_settings(
        _store, current.alerts, hide_payloads=current.dashboard.hide_payloads
    )


def queries() -> SagaQueries:
    """The query layer over the runtime's store, one per store and settings."""
    current = runtime.store()
    config = runtime.settings()
    return _queries_for(current, id(current), repr((config.alerts, config.dashboard.hide_payloads)))


#: What a cached answer depends on besides its arguments: the store and the data's age.
DataKey = tuple[int, "datetime | None"]


def _cache(func: Callable[..., Any]) -> Any:
    return st.cache_data(ttl=RESULT_TTL_S, max_entries=256, show_spinner=False)(func)


@_cache
def _status_counts(_q: SagaQueries, key: DataKey, f: SagaFilter) -> dict[str, int]:
    return _q.status_counts(f)


@_cache
def _throughput(_q: SagaQueries, key: DataKey, f: SagaFilter, bucket_s: int) -> list[Any]:
    return _q.throughput(f, bucket_s)


@_cache
def _cycle_times(_q: SagaQueries, key: DataKey, f: SagaFilter) -> list[Any]:
    return _q.cycle_times(f)


@_cache
def _cycle_times_over_time(_q: SagaQueries, key: DataKey, f: SagaFilter, bucket_s: int) -> list[Any]:
    return _q.cycle_times_over_time(f, bucket_s)


@_cache
def _failures(_q: SagaQueries, key: DataKey, f: SagaFilter) -> list[Any]:
    return _q.failures(f)


@_cache
def _compensation_summary(_q: SagaQueries, key: DataKey, f: SagaFilter, limit: int) -> Any:
    return _q.compensation_summary(f, limit)


@_cache
def _stalled(_q: SagaQueries, key: DataKey, f: SagaFilter) -> list[Any]:
    return _q.stalled(f)


@_cache
def _process_map(_q: SagaQueries, key: DataKey, f: SagaFilter) -> ProcessMap:
    return _q.process_map(f, by="step")


@_cache
def _variants(_q: SagaQueries, key: DataKey, f: SagaFilter, limit: int) -> list[Any]:
    return _q.variants(f, limit, by="step")


@_cache
def _saga_page(_q: SagaQueries, key: DataKey, f: SagaFilter, sort: str, descending: bool,
               offset: int, limit: int) -> SagaPage:
    return _q.saga_page(f, sort=sort, descending=descending, offset=offset, limit=limit)


@_cache
def _step_times(_q: SagaQueries, key: DataKey, f: SagaFilter) -> list[Any]:
    return _q.step_times(f)


@_cache
def _waiting_by_step(_q: SagaQueries, key: DataKey, f: SagaFilter) -> dict[str, dict[str, int]]:
    return _q.waiting_by_step(f)


@st.cache_data(ttl=600, show_spinner=False)
def _saga_types(_q: SagaQueries, store_key: int) -> list[str]:
    return _q.saga_types()


@_cache
def _filter_choices(_q: SagaQueries, key: DataKey, saga_type: str) -> dict[str, list[str]]:
    return _q.filter_choices(saga_type or None)


@_cache
def _alerts(_q: SagaQueries, key: DataKey, saga_type: str, state: str, since: datetime | None,
            limit: int | None) -> list[Any]:
    return _q.alerts(saga_type=saga_type or None, state=state or None, since=since, limit=limit)


class CachedQueries:
    """The questions pages ask, one typed method each, cached for the same data."""

    def __init__(self, q: SagaQueries, key: DataKey) -> None:
        self._q = q
        self._key = key

    def status_counts(self, f: SagaFilter) -> dict[str, int]:
        return _status_counts(self._q, self._key, f)

    def throughput(self, f: SagaFilter, bucket_s: int) -> list[ThroughputPoint]:
        return _throughput(self._q, self._key, f, bucket_s)

    def cycle_times(self, f: SagaFilter) -> list[CycleTimeStats]:
        return _cycle_times(self._q, self._key, f)

    def cycle_times_over_time(self, f: SagaFilter, bucket_s: int) -> list[CycleTimeStats]:
        return _cycle_times_over_time(self._q, self._key, f, bucket_s)

    def failures(self, f: SagaFilter) -> list[FailureCount]:
        return _failures(self._q, self._key, f)

    def compensation_summary(self, f: SagaFilter, limit: int) -> CompensationSummary:
        return _compensation_summary(self._q, self._key, f, limit)

    def stalled(self, f: SagaFilter) -> list[StalledSaga]:
        return _stalled(self._q, self._key, f)

    def process_map(self, f: SagaFilter) -> ProcessMap:
        return _process_map(self._q, self._key, f)

    def variants(self, f: SagaFilter, limit: int) -> list[Variant]:
        return _variants(self._q, self._key, f, limit)

    def saga_page(self, f: SagaFilter, *, sort: str, descending: bool, offset: int,
                  limit: int) -> SagaPage:
        return _saga_page(self._q, self._key, f, sort, descending, offset, limit)

    def step_times(self, f: SagaFilter) -> list[StepTime]:
        return _step_times(self._q, self._key, f)

    def waiting_by_step(self, f: SagaFilter) -> dict[str, dict[str, int]]:
        return _waiting_by_step(self._q, self._key, f)

    def saga_types(self) -> list[str]:
        return _saga_types(self._q, self._key[0])

    def filter_choices(self, saga_type: str | None) -> dict[str, list[str]]:
        return _filter_choices(self._q, self._key, saga_type or "")

    def alerts(self, *, saga_type: str | None, state: str | None, since: datetime | None,
               limit: int | None) -> list[Alert]:
        return _alerts(self._q, self._key, saga_type or "", state or "", since, limit)

    # One saga: cheap point queries, always fresh.
    def flow(self, key: str) -> Flow:
        return self._q.flow(key)

    def diagnosis(self, saga_id: str) -> SagaDiagnosis | None:
        return self._q.diagnosis(saga_id)


def ask() -> CachedQueries:
    """The cached query layer for the data as of this run."""
    current = runtime.store()
    return CachedQueries(queries(), (id(current), st.session_state.get("_data_as_of")))


# ---- filters in the URL -------------------------------------------------------------------


def url_bound(param: str, default: str = "", *, strict: bool = False) -> str:
    """The widget key ``url_<param>``, its value taken from ``?param=`` when the URL changed.

    Call before creating the widget with ``key=url_key(param)``; :func:`sync_url` writes the
    widgets' values back to the URL after them. ``strict``: a page's own filter, reset to
    ``default`` when a new URL lacks it (a link names every filter it wants).
    """
    key = url_key(param)
    in_url = st.query_params.get(param)
    seen_key = f"_url_seen_{param}"
    if key not in st.session_state or (strict and st.session_state.get(seen_key) != in_url):
        st.session_state[key] = in_url if in_url is not None else default
    elif in_url is not None and st.session_state.get(seen_key) != in_url:
        # A link or a reload named a value: the URL wins. (Switching pages drops the URL's
        # parameters; the session keeps the values and sync_url writes them back.)
        st.session_state[key] = in_url
    st.session_state[seen_key] = in_url
    return key


def url_key(param: str) -> str:
    return f"url_{param}"


def sync_url(defaults: dict[str, str]) -> None:
    """Write the values of the widgets bound to ``defaults``' params to the URL."""
    for param, default in defaults.items():
        value = str(st.session_state.get(url_key(param), default) or "")
        if value and value != default:
            st.query_params[param] = value
        elif param in st.query_params:
            del st.query_params[param]
        st.session_state[f"_url_seen_{param}"] = st.query_params.get(param)


def sidebar() -> None:
    """The global filters (time range, saga type) in the URL, and the "data as of" time."""
    with st.sidebar:
        st.markdown("### :material/travel_explore: sagascope")
        range_key = url_bound("range", DEFAULT_TIME_RANGE)
        if st.session_state.get(range_key) not in TIME_RANGES:
            st.session_state[range_key] = DEFAULT_TIME_RANGE
        st.selectbox("Time range", list(TIME_RANGES), key=range_key,
                     format_func=lambda k: TIME_RANGES[k][0])
        type_key = url_bound("type", ALL)
        types = [ALL, *_safe_saga_types()]
        if st.session_state.get(type_key) not in types:
            types.append(str(st.session_state.get(type_key)))
        st.selectbox("Saga type", types, key=type_key,
                     format_func=lambda t: t or "All saga types")
        st.toggle(f"Auto-refresh every {runtime.settings().dashboard.refresh_s:g} s",
                  value=True, key="auto_refresh")
    sync_url({"range": DEFAULT_TIME_RANGE, "type": ALL})


def _safe_saga_types() -> list[str]:
    try:
        return _saga_types(queries(), id(runtime.store()))
    except StoreError as exc:
        log.warning("dashboard saga_types failed: %s", exc)
        return []


def saga_type() -> str | None:
    return str(st.session_state.get(url_key("type")) or "") or None


def time_range_label() -> str:
    return TIME_RANGES[str(st.session_state.get(url_key("range"), DEFAULT_TIME_RANGE))][0]


def current_filter(**extra: Any) -> SagaFilter:
    """The sidebar's time range and saga type as a ``SagaFilter`` (plus ``extra`` fields)."""
    choice = str(st.session_state.get(url_key("range"), DEFAULT_TIME_RANGE))
    window = TIME_RANGES.get(choice, TIME_RANGES[DEFAULT_TIME_RANGE])[1]
    fields: dict[str, Any] = {
        "time_from": _anchor() - window if window is not None else None,
        "saga_type": saga_type(),
    }
    fields.update(extra)
    return SagaFilter(**fields)


def range_start() -> datetime | None:
    return current_filter().time_from


def _anchor() -> datetime:
    """Ranges end at the newest data, so a replayed historical log shows its own last hour."""
    as_of = st.session_state.get("_data_as_of")
    now = datetime.now(UTC)
    if isinstance(as_of, datetime) and as_of < now:
        return as_of
    return now


# ---- running a page: live data, friendly errors -------------------------------------------


def refresh_data_as_of() -> None:
    """Read the watermark once per run; cached answers are keyed by it."""
    as_of = _data_as_of()
    st.session_state["_data_as_of"] = as_of
    freshness.show(queries(), as_of, runtime.settings().dashboard.stale_after_s)


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


def run_page(page: Any) -> None:
    """Run the selected page; store trouble becomes a message, not a traceback."""
    _guarded(page.run)


def _guarded(body: Callable[[], None]) -> None:
    try:
        body()
    except StoreUnavailable as exc:
        st.warning(f"The store cannot be reached right now; retrying on the next refresh. "
                   f"({exc})", icon=":material/cloud_off:")
    except SagascopeError as exc:
        log.exception("dashboard page failed")
        st.error(f"This page could not be shown: {exc}", icon=":material/error:")


def live(render: Callable[[], None]) -> None:
    """Run a page's ``render`` as a fragment: auto-refresh reruns only it, with fresh data.

    Each rerun reads the watermark first; answers cached for the same watermark are reused,
    so a refresh with no new data costs one small query.
    """
    every = runtime.settings().dashboard.refresh_s if st.session_state.get("auto_refresh") else None
    st.fragment(run_every=every)(_live_body)(render)


def _live_body(render: Callable[[], None]) -> None:
    def body() -> None:
        refresh_data_as_of()
        render()

    _guarded(body)


def open_flow(saga_id: str) -> None:
    """Go to a saga's flow in this tab (same session: filters and caches are kept)."""
    st.switch_page(FLOW_PAGE, query_params={"saga": saga_id})


def open_sagas(**params: str) -> None:
    """Go to the saga list with these URL filters."""
    st.switch_page(SAGAS_PAGE, query_params={k: v for k, v in params.items() if v})


def selected_row(event: Any) -> int | None:
    """The row index a ``st.dataframe(on_select="rerun")`` event selected, if any."""
    try:
        rows = event.selection.rows
    except AttributeError:
        return None
    return int(rows[0]) if rows else None


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


def frame(results: Sequence[Any]) -> pd.DataFrame:
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
    choice = str(st.session_state.get(url_key("range"), DEFAULT_TIME_RANGE))
    window = TIME_RANGES.get(choice, TIME_RANGES[DEFAULT_TIME_RANGE])[1]
    if window is None:
        return 3600
    for width in (60, 300, 900, 3600, 6 * 3600, 86400):
        if window.total_seconds() / width <= 180:
            return width
    return 86400


def describe_bucket(width_s: int) -> str:
    return f"{width_s // 60} min" if width_s < 3600 else f"{width_s // 3600} h"


def escape_md(text: str) -> str:
    """``text`` with Markdown's special characters escaped."""
    return "".join("\\" + ch if ch in "\\`*_{}[]()#+-.!|<>~$" else ch for ch in str(text))
