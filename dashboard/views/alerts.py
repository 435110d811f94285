"""Alerts: grouped by saga type and step (a storm reads as a handful of lines), open and resolved,
within the sidebar's time range; each alert opens its flow."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st
from sagascope.dashboard import _page, figures
from sagascope.queries import Alert

#: Alerts read per state (newest first).
ALERT_LIMIT = 5000


def alert_groups(open_alerts: Sequence[Alert], resolved: Sequence[Alert]) -> pd.DataFrame:
    """One row per (saga type, step): open and resolved counts, oldest silence, an example."""
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for alert in [*open_alerts, *resolved]:
        group = rows.setdefault((alert.saga_type, alert.step), {
            "saga type": alert.saga_type, "step": alert.step, "open": 0, "resolved": 0,
            "waiting for": alert.waiting_for, "silent since": alert.since,
            "newest opened": alert.opened_at, "example": alert.saga_id,
        })
        group["open" if alert.state == "open" else "resolved"] += 1  # type: ignore[operator]
        if alert.state == "open" and alert.since < group["silent since"]:  # type: ignore[operator]
            group["silent since"] = alert.since
            group["example"] = alert.saga_id
        if alert.opened_at > group["newest opened"]:  # type: ignore[operator]
            group["newest opened"] = alert.opened_at
    frame = pd.DataFrame(list(rows.values()))
    if frame.empty:
        return frame
    return frame.sort_values(["open", "resolved"], ascending=False).reset_index(drop=True)


def alerts_table(alerts: Sequence[Alert]) -> pd.DataFrame:
    frame = _page.frame(alerts)
    return pd.DataFrame({
        "saga": frame["saga_id"],
        "saga type": frame["saga_type"],
        "stalled after": frame["step"],
        "waiting for": frame["waiting_for"],
        "silent since": frame["since"],
        "threshold": frame["threshold_s"].map(figures.format_duration),
        "opened": frame["opened_at"],
        "resolved": frame["resolved_at"],
        "resolution": frame["resolution"],
    })


_TIMES = {
    name: st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")
    for name in ("silent since", "opened", "resolved", "newest opened")
}


def _table(alerts: Sequence[Alert], key: str, drop: Sequence[str] = ()) -> None:
    table = alerts_table(alerts).drop(columns=list(drop))
    event = st.dataframe(table, hide_index=True, width="stretch", key=key, on_select="rerun",
                         selection_mode="single-row", column_config=_TIMES)
    chosen = _page.selected_row(event)
    if chosen is not None:
        _page.open_flow(str(table["saga"].iloc[chosen]))


def render() -> None:
    st.title("Alerts")
    ask = _page.ask()
    since = _page.range_start()
    saga_type = _page.saga_type()
    open_alerts = ask.alerts(saga_type=saga_type, state="open", since=since, limit=ALERT_LIMIT)
    resolved = ask.alerts(saga_type=saga_type, state="resolved", since=since, limit=ALERT_LIMIT)
    groups = alert_groups(open_alerts, resolved)
    cols = st.columns(3)
    cols[0].metric("Open", f"{len(open_alerts):,}")
    cols[1].metric("Resolved", f"{len(resolved):,}")
    cols[2].metric("Groups (saga type · step)", len(groups))
    st.caption(f"Alerts opened or changed in the {_page.time_range_label().lower()}.")
    st.subheader("By saga type and step")
    if groups.empty:
        st.success("No alerts in this range.", icon=":material/notifications_off:")
        return
    event = st.dataframe(groups, hide_index=True, width="stretch", key="alert_groups",
                         on_select="rerun", selection_mode="single-row", column_config=_TIMES)
    chosen = _page.selected_row(event)
    if chosen is not None:
        row = groups.iloc[chosen]
        _page.open_sagas(type=str(row["saga type"]), at=str(row["step"]), status="stalled",
                         range="all")
    st.caption("Select a group to list its stalled sagas.")
    st.subheader("Open")
    if open_alerts:
        _table(open_alerts, "open_alerts", drop=("resolved", "resolution"))
    else:
        st.success("No open alerts.", icon=":material/notifications_off:")
    st.subheader("Resolved")
    if resolved:
        _table(resolved, "resolved_alerts")
    else:
        st.caption("No resolved alerts in this range.")


if __name__ == "__main__":
    _page.live(render)
