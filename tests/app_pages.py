"""The real dashboard app run by Streamlit's AppTest on one page, over a given store: the one
opener of the dashboard, truth and ground-truth page tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st
from streamlit.testing.v1 import AppTest

from sagascope.dashboard import APP_PATH, runtime
from sagascope.dashboard.cached_queries import forget_watermarks
from sagascope.settings import Settings

#: Page name -> the app's script of that page.
PAGES = {
    "overview": "views/overview.py",
    "flow": "views/flow_explorer.py",
    "stalled": "views/stalled_sagas.py",
    "sagas": "views/sagas.py",
    "time": "views/time_spent.py",
    "failures": "views/failures.py",
    "process_map": "views/process_map.py",
    "alerts": "views/alerts.py",
}


def open_app_page(page: str, store: Any, settings: Settings | None = None, *,
                  timeout_s: float = 60, **query: str) -> AppTest:
    """Run the app on ``page`` against ``store`` with ``query`` as its URL parameters.

    Every cache of the app is emptied first (Streamlit's and the remembered watermarks), so a
    page never shows what an earlier test's store answered.
    """
    st.cache_data.clear()
    st.cache_resource.clear()
    forget_watermarks()
    runtime.configure(settings or Settings(), store)
    at = AppTest.from_file(str(APP_PATH), default_timeout=timeout_s)
    at.run()
    if page != "overview":
        at.switch_page(PAGES[page])
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@contextmanager
def app_pages() -> Iterator[Callable[..., AppTest]]:
    """:func:`open_app_page`, with the app's runtime reset on leaving (a fixture's body)."""
    try:
        yield open_app_page
    finally:
        runtime.reset()
