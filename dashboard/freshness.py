"""How current the page's data is: the "data as of" line and, when the collector's watermark
or the newest message is older than ``dashboard.stale_after_s``, a warning, on every page.

Drawn at the top of each page's body, clear of Streamlit's fixed header (the body's first
line sits under it otherwise).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import datetime

import streamlit as st

from sagascope.queries import Freshness
from sagascope.store import StoreError

log = logging.getLogger(__name__)

# Streamlit's header is about 3.75rem tall and the page body starts 2.2rem down: this line
# moves down by the difference, so it is never drawn under the header.
_LINE = ('<div class="data-as-of" style="margin-top: 1.6rem; color: #5c6370; '
         'font-size: 0.875rem;">{text}</div>')


def show(check: Callable[[], Freshness], as_of: datetime | None, stale_after_s: float) -> None:
    """The "data as of" line and, if the data is stale (by ``check()``), a warning saying
    why."""
    text = as_of.strftime("%Y-%m-%d %H:%M:%S UTC") if as_of else "no data yet"
    st.html(_LINE.format(text=f"Data as of <b>{html.escape(text)}</b>"))
    if as_of is None:
        return
    try:
        warning = check().warning(stale_after_s)
    except StoreError as exc:  # the page itself says when the store is down
        log.warning("dashboard freshness failed: %s", exc)
        return
    if warning:
        st.warning(warning, icon=":material/hourglass_disabled:")
