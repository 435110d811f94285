"""The Streamlit main script: global filters in the sidebar, ``st.navigation`` over the pages.

Run by :func:`sagascope.dashboard.server.serve` (``sagascope dashboard``), or directly with
``streamlit run dashboard/app.py``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from sagascope.dashboard import _chrome, auth, runtime

_PAGES = Path(__file__).with_name("views")


def main() -> None:
    st.set_page_config(
        page_title="sagascope", page_icon=":material/travel_explore:", layout="wide",
        initial_sidebar_state="expanded",
    )
    _chrome.style()
    pages = [
        st.Page(_PAGES / "overview.py", title="Overview", icon=":material/monitoring:",
                default=True),
        st.Page(_PAGES / "flow_explorer.py", title="Flow explorer", icon=":material/route:"),
        st.Page(_PAGES / "stuck_sagas.py", title="Stuck sagas", icon=":material/hourglass_top:"),
        st.Page(_PAGES / "failures.py", title="Failures & compensations",
                icon=":material/report:"),
        st.Page(_PAGES / "process_map.py", title="Process map", icon=":material/account_tree:"),
        st.Page(_PAGES / "alerts.py", title="Alerts", icon=":material/notifications_active:"),
    ]
    access = runtime.settings().dashboard
    # Navigation hidden, not skipped, before the login: the page asked for (and its ?saga=)
    # stays the page shown once admitted.
    page = st.navigation(pages, position="sidebar" if auth.admitted(access) else "hidden")
    auth.gate(access)
    _chrome.sidebar()
    _chrome.run_page(page)


main()
