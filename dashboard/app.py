"""The Streamlit main script: global filters in the sidebar, ``st.navigation`` over the pages.

Run by :func:`sagascope.dashboard.server.serve` (``sagascope dashboard``), or directly with
``streamlit run dashboard/app.py``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from sagascope.dashboard import auth, chrome, runtime

_PAGES = Path(__file__).with_name("views")


def main() -> None:
    pages = [
        st.Page(_PAGES / "overview.py", title="Overview", icon=":material/monitoring:",
                default=True),
        st.Page(_PAGES / "sagas.py", title="Sagas", icon=":material/list:"),
        st.Page(_PAGES / "flow_explorer.py", title="Flow explorer", icon=":material/route:"),
        st.Page(_PAGES / "stalled_sagas.py", title="Stalled sagas",
                icon=":material/hourglass_top:"),
        st.Page(_PAGES / "failures.py", title="Failures & compensations",
                icon=":material/report:"),
        st.Page(_PAGES / "process_map.py", title="Process map", icon=":material/account_tree:"),
        st.Page(_PAGES / "time_spent.py", title="Where time goes", icon=":material/timer:"),
        st.Page(_PAGES / "alerts.py", title="Alerts", icon=":material/notifications_active:"),
    ]
    access = runtime.settings().dashboard
    # Navigation hidden, not skipped, before the login: the page asked for (and its ?saga=)
    # stays the page shown once admitted.
    page = st.navigation(pages, position="sidebar" if auth.admitted(access) else "hidden")
    chrome.page_setup(page.title)
    auth.gate(access)
    chrome.read_watermark()
    chrome.sidebar()
    auth.session_controls(access)
    chrome.run_page(page)


main()
