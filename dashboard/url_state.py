"""Every filter a page shows lives in the URL (``st.query_params``), so a view can be shared
and reloaded: the binding of widgets to URL parameters, and the global filters (time range,
saga type) as a :class:`SagaFilter`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from sagascope.queries import SagaFilter

#: Time-range choices of the sidebar (URL value -> label, window); None is "all time".
TIME_RANGES: dict[str, tuple[str, timedelta | None]] = {
    "15m": ("Last 15 minutes", timedelta(minutes=15)),
    "1h": ("Last hour", timedelta(hours=1)),
    "6h": ("Last 6 hours", timedelta(hours=6)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "all": ("All time", None),
    "fixed": ("Fixed (from/until in the link)", None),
}
DEFAULT_TIME_RANGE = "1h"
#: The fixed range's ends in the URL (``?range=fixed&since=...&until=...``, ISO 8601 UTC).
SINCE, UNTIL = "since", "until"
ALL = ""


def url_key(param: str) -> str:
    return f"url_{param}"


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


def sync_url(defaults: dict[str, str]) -> None:
    """Write the values of the widgets bound to ``defaults``' params to the URL."""
    for param, default in defaults.items():
        value = str(st.session_state.get(url_key(param), default) or "")
        if value and value != default:
            st.query_params[param] = value
        elif param in st.query_params:
            del st.query_params[param]
        st.session_state[f"_url_seen_{param}"] = st.query_params.get(param)


def value(param: str) -> str:
    """The current value of the widget bound to ``param`` ('' when none)."""
    return str(st.session_state.get(url_key(param)) or "")


def saga_type() -> str | None:
    return value("type") or None


def time_range() -> str:
    """The sidebar's time-range choice (a key of :data:`TIME_RANGES`)."""
    choice = value("range") or DEFAULT_TIME_RANGE
    return choice if choice in TIME_RANGES else DEFAULT_TIME_RANGE


def time_range_label() -> str:
    if time_range() == "fixed":
        since, until = fixed_range()
        return f"{_text(since) or 'the start'} to {_text(until) or 'now'} (UTC)"
    return TIME_RANGES[time_range()][0]


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time from the URL (UTC unless it says otherwise); None if empty or bad."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else ""


def fixed_range() -> tuple[datetime | None, datetime | None]:
    """The fixed range's (since, until) from the URL-bound widgets."""
    return parse_time(value(SINCE)), parse_time(value(UNTIL))


def current_filter(**extra: Any) -> SagaFilter:
    """The sidebar's time range and saga type as a ``SagaFilter`` (plus ``extra`` fields)."""
    time_from, time_to = range_bounds()
    fields: dict[str, Any] = {"time_from": time_from, "time_to": time_to,
                              "saga_type": saga_type()}
    fields.update(extra)
    return SagaFilter(**fields)


def range_bounds() -> tuple[datetime | None, datetime | None]:
    """(from, to) of the chosen range; a relative range ends at the newest data (open end)."""
    if time_range() == "fixed":
        return fixed_range()
    window = TIME_RANGES[time_range()][1]
    return (anchor() - window if window is not None else None), None


def range_start() -> datetime | None:
    return range_bounds()[0]


def range_params() -> dict[str, str]:
    """The URL parameters naming the current time range, for links to other pages."""
    params = {"range": time_range()}
    if time_range() == "fixed":
        params.update({SINCE: value(SINCE), UNTIL: value(UNTIL)})
    return params


def sidebar_params() -> dict[str, str]:
    """The sidebar's filters (range, saga type) as URL parameters: a link that opens another
    page (a new session) keeps them."""
    return {**range_params(), "type": value("type")}


def anchor() -> datetime:
    """Ranges end at the newest data, so a replayed historical log shows its own last hour."""
    as_of = st.session_state.get("_data_as_of")
    now = datetime.now(UTC)
    if isinstance(as_of, datetime) and as_of < now:
        return as_of
    return now


def bucket_seconds(most: int = 180) -> int:
    """Bucket width for charts over time: at most ``most`` buckets over the range shown (about
    a third of that at least).

    "All time" (and an open fixed range) is measured from ``first_data`` (the oldest data) to
    the newest, so a long history is not squeezed into one bucket.
    """
    start, end = range_bounds()
    end = end or anchor()
    if start is None:
        start = st.session_state.get("_data_since")
    if not isinstance(start, datetime) or start >= end:
        return 3600
    span_s = (end - start).total_seconds()
    for width in (10, 30, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400):
        if span_s / width <= most:
            return width
    return 30 * 86400


def describe_bucket(width_s: int) -> str:
    if width_s < 60:
        return f"{width_s} s"
    if width_s < 3600:
        return f"{width_s // 60} min"
    if width_s < 86400:
        return f"{width_s // 3600} h"
    return f"{width_s // 86400} d"
