"""Alerts: open and resolved stalled-saga alerts, each linking to its flow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st
from sagascope.dashboard import _chrome, figures, runtime
from sagascope.queries import list_alerts

#: Resolved alerts shown (newest first).
RESOLVED_LIMIT = 200


def alerts_table(alerts: Sequence[object]) -> pd.DataFrame:
    frame = _chrome.frame(alerts)
    return pd.DataFrame({
        "saga": [_chrome.flow_url(s) for s in frame["saga_id"]],
        "saga type": frame["saga_type"],
        "stuck after": frame["step"],
        "waiting for": frame["waiting_for"],
        "silent since": frame["since"],
        "threshold": frame["threshold_s"].map(figures.format_duration),
        "opened": frame["opened_at"],
        "resolved": frame["resolved_at"],
        "resolution": frame["resolution"],
    })


_COLUMNS: dict[str, Any] = {
    "saga": st.column_config.LinkColumn(display_text=r"saga=(.*)$"),
    "silent since": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
    "opened": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
    "resolved": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
}


def render() -> None:
    st.title("Alerts")
    store = runtime.store()
    open_alerts = list_alerts(store, state="open", limit=None)
    resolved = list_alerts(store, state="resolved", limit=RESOLVED_LIMIT)
    saga_type = _chrome.current_filter().saga_type
    if saga_type:
        open_alerts = [a for a in open_alerts if getattr(a, "saga_type", "") == saga_type]
        resolved = [a for a in resolved if getattr(a, "saga_type", "") == saga_type]
    cols = st.columns(2)
    cols[0].metric("Open", len(open_alerts))
    cols[1].metric("Recently resolved", len(resolved))
    st.subheader("Open")
    if open_alerts:
        table = alerts_table(open_alerts).drop(columns=["resolved", "resolution"])
        st.dataframe(table, hide_index=True, width="stretch", key="open_alerts",
                     column_config=_COLUMNS)
    else:
        st.success("No open alerts.", icon=":material/notifications_off:")
    st.subheader("Resolved")
    if resolved:
        st.dataframe(alerts_table(resolved), hide_index=True, width="stretch",
                     key="resolved_alerts", column_config=_COLUMNS)
    else:
        st.caption("No resolved alerts yet.")


if __name__ == "__main__":
    render()
