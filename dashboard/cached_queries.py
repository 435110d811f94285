"""The questions pages ask, typed and cached per store and watermark: each written once.

A cached question is a :class:`SagaQueries` method named in :class:`CachedQueries`' body
(``status_counts = cached(SagaQueries.status_counts)``): its signature and its result type are
the query layer's own, and its answer is kept for the same store, the same watermark and the
same arguments. The watermark itself (the one query a live page repeats) is read at most once
per :func:`watermark_max_age_s` per process, however many pages are open, and the freshness
check once per :data:`FRESHNESS_MAX_AGE_S`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import streamlit as st

from sagascope.dashboard import runtime
from sagascope.queries import Acknowledgement, Freshness, SagaQueries
from sagascope.store import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

#: How long an answer is kept. Answers are keyed by the watermark, so new data gets new
#: answers at once; the age limit only bounds what a range anchored at "now" may drift.
RESULT_TTL_S = 300.0
#: Answers kept per question (filters, ranges, pages of the saga list...).
MAX_ENTRIES = 256
#: A watermark read this recently is reused by every session of this process: at least this
#: long, and up to half the live refresh (:func:`watermark_max_age_s`).
WATERMARK_MAX_AGE_S = 1.0

#: What a cached answer depends on besides its arguments: the store and its watermark.
DataKey = tuple[int, "datetime | None"]

P = ParamSpec("P")
R = TypeVar("R")


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


class cached(Generic[P, R]):
    """``name = cached(SagaQueries.name)`` in :class:`CachedQueries`: that question, cached."""

    def __init__(self, question: Callable[Concatenate[SagaQueries, P], R]) -> None:
        def answer(_q: SagaQueries, key: DataKey, *args: Any, **kwargs: Any) -> Any:
            return question(_q, *args, **kwargs)

        # Streamlit keys a cache by the function's module, qualified name and source: every
        # ``answer`` has the same source, so the question's name tells them apart.
        answer.__qualname__ = f"cached.{question.__name__}"
        answer.__name__ = question.__name__
        self._answer = st.cache_data(ttl=RESULT_TTL_S, max_entries=MAX_ENTRIES,
                                     show_spinner=False)(answer)

    def __get__(self, owner: CachedQueries, cls: type | None = None) -> Callable[P, R]:
        def ask(*args: P.args, **kwargs: P.kwargs) -> R:
            return self._answer(owner.q, owner.key, *args, **kwargs)

        return ask


class CachedQueries:
    """The questions pages ask, cached for the same data (acknowledgements are not)."""

    def __init__(self, q: SagaQueries, key: DataKey) -> None:
        self.q = q
        self.key = key

    status_counts = cached(SagaQueries.status_counts)
    throughput = cached(SagaQueries.throughput)
    cycle_times = cached(SagaQueries.cycle_times)
    cycle_times_over_time = cached(SagaQueries.cycle_times_over_time)
    failures = cached(SagaQueries.failures)
    compensation_summary = cached(SagaQueries.compensation_summary)
    stalled = cached(SagaQueries.stalled)
    process_map = cached(SagaQueries.process_map)
    variants = cached(SagaQueries.variants)
    saga_page = cached(SagaQueries.saga_page)
    step_times = cached(SagaQueries.step_times)
    waiting_by_step = cached(SagaQueries.waiting_by_step)
    saga_types = cached(SagaQueries.saga_types)
    filter_choices = cached(SagaQueries.filter_choices)
    alerts = cached(SagaQueries.alerts)
    trace_spans = cached(SagaQueries.trace_spans)
    slowest_handlings = cached(SagaQueries.slowest_handlings)
    data_since = cached(SagaQueries.data_since)

    # One saga: point queries, cached too (a click on the page reruns it; new data has a
    # new watermark, so a new answer).
    flow = cached(SagaQueries.flow)
    diagnosis = cached(SagaQueries.diagnosis)

    # Always fresh: what this dashboard itself writes.
    def acknowledgements(self) -> dict[tuple[str, str], Acknowledgement]:
        return self.q.acknowledgements()


def ask() -> CachedQueries:
    """The cached query layer for the data as of this run (:func:`data_as_of`)."""
    current = runtime.store()
    return CachedQueries(queries(), (id(current), st.session_state.get("_data_as_of")))


# ---- the watermark and freshness: read at most once a while per process -------------------

#: The freshness check (collector progress, newest message) behind every page's "data as of"
#: line is reused this long by every session of this process: its warning speaks of minutes,
#: and the check counts every stored message (15-60 ms at 1,000,000 messages, on each run).
FRESHNESS_MAX_AGE_S = 5.0

_recent_lock = threading.Lock()
_recent: dict[tuple[str, int], tuple[float, Any]] = {}


def forget_watermarks() -> None:
    """Drop the remembered watermarks and freshness checks (tests that change the store under
    a page)."""
    with _recent_lock:
        _recent.clear()


def _read_recently(name: str, max_age_s: float, read: Callable[[], R]) -> R:
    """``read()``'s answer for the runtime's store, reused for ``max_age_s`` by every session."""
    key = (name, id(runtime.store()))
    now = time.monotonic()
    with _recent_lock:
        seen = _recent.get(key)
        if seen is not None and now - seen[0] < max_age_s:
            return seen[1]
    value = read()
    with _recent_lock:
        _recent[key] = (now, value)
    return value


def data_as_of() -> datetime | None:
    """The store's watermark (:meth:`SagaQueries.data_as_of`), read at most once per
    :func:`watermark_max_age_s` in this process; None while the store holds nothing.

    Raises:
        StoreUnavailable: the store cannot be reached.
    """
    return _read_recently("watermark", watermark_max_age_s(), _read_watermark)


def watermark_max_age_s() -> float:
    """How long every session of this process reuses one watermark reading: half of
    ``dashboard.refresh_s`` (5 s by default), never under :data:`WATERMARK_MAX_AGE_S`.

    The watermark keys every cached answer. Under live traffic it moves with each insert,
    so read afresh on each run it would make every visit ask every question again (0.1-0.6 s
    each on a demo store, more under load); reused for half a refresh, the visits of that
    window share their answers, and data still reaches a live page within one and a half
    refreshes of being stored.
    """
    return max(WATERMARK_MAX_AGE_S, runtime.settings().dashboard.refresh_s / 2)


def _read_watermark() -> datetime | None:
    try:
        value = queries().data_as_of()
    except StoreUnavailable:
        raise
    except StoreError as exc:
        # A database without sagascope's tables yet: nothing collected so far.
        log.warning("dashboard data_as_of failed: %s", exc)
        value = None
    return value if isinstance(value, datetime) else None


def freshness() -> Freshness:
    """:meth:`SagaQueries.freshness`, read at most once per :data:`FRESHNESS_MAX_AGE_S` in
    this process.

    Raises:
        StoreError: the store could not answer.
    """
    return _read_recently("freshness", FRESHNESS_MAX_AGE_S, lambda: queries().freshness())
