"""Where the pages lead: links and same-tab moves to a saga's flow and to the saga list."""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from sagascope.queries import flow_link

#: Where each page lives (its script, for ``st.switch_page``).
FLOW_PAGE = "views/flow_explorer.py"
SAGAS_PAGE = "views/sagas.py"


def open_flow(saga_id: str, **params: str) -> None:
    """Go to a saga's flow in this tab (same session: filters and caches are kept)."""
    st.switch_page(FLOW_PAGE, query_params={"saga": saga_id, **params})


def open_sagas(**params: str) -> None:
    """Go to the saga list with these URL filters."""
    st.switch_page(SAGAS_PAGE, query_params={k: v for k, v in params.items() if v})


def flow_url(saga_id: str, **params: str) -> str:
    """Relative link to a saga's flow (the deep link alerts point to), with ``params``
    (empty values left out)."""
    extra = urlencode({k: v for k, v in params.items() if v})
    return flow_link("", saga_id) + (f"&{extra}" if extra else "")


def sagas_url(**params: str) -> str:
    """Relative link to the saga list with these filters (empty values left out)."""
    return _page_url("sagas", params)


def time_spent_url(**params: str) -> str:
    """Relative link to Where time goes with these parameters (empty values left out)."""
    return _page_url("time_spent", params)


def page_url(page: str, **params: str) -> str:
    """Relative link to a page (its URL path, e.g. ``alerts``) with these parameters (empty
    values left out)."""
    return _page_url(page, params)


def _page_url(path: str, params: dict[str, str]) -> str:
    return path + "?" + urlencode({k: v for k, v in params.items() if v})
