"""Alerts: grouped by saga type and step (a storm reads as a handful of lines), open and resolved,
within the sidebar's time range; each alert opens its flow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st
from sagascope.dashboard import chrome, figures, links, runtime, tables, url_state
from sagascope.dashboard.cached_queries import ask
from sagascope.queries import Acknowledgement, Alert, QueryError, acknowledge

#: Silence choices (label -> length).
SILENCES = {"1 hour": timedelta(hours=1), "4 hours": timedelta(hours=4),
            "24 hours": timedelta(hours=24)}

#: Alerts read per state (newest first).
ALERT_LIMIT = 5000


def alert_groups(open_alerts: Sequence[Alert], resolved: Sequence[Alert],
                 acks: Mapping[tuple[str, str], Acknowledgement] | None = None,
                 now: datetime | None = None) -> pd.DataFrame:
    """One row per (saga type, step): open and resolved counts, oldest silence, an example,
    and who acknowledged or silenced it (and until when)."""
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for alert in [*open_alerts, *resolved]:
        group = rows.setdefault((alert.saga_type, alert.step), {
            "saga type": alert.saga_type, "step": alert.step, "open": 0, "resolved": 0,
            "waiting for": alert.waiting_for, "silent since": alert.since,
            "newest opened": alert.opened_at, "example": alert.saga_id,
        })
        group["open" if alert.state == "open" else "resolved"] += 1  # type: ignore[operator]
        if alert.state == "open" and alert.since < group["silent since"]:
            group["silent since"] = alert.since
            group["example"] = alert.saga_id
        if alert.opened_at > group["newest opened"]:
            group["newest opened"] = alert.opened_at
    acks = acks or {}
    moment = now or datetime.now(UTC)
    for key, group in rows.items():
        ack = acks.get(key)
        group["handled"] = _ack_text(ack) if ack is not None and ack.active(moment) else ""
    frame = pd.DataFrame(list(rows.values()))
    if frame.empty:
        return frame
    # Most open first; acknowledging does not move a row (a selected row stays selected).
    frame = frame.sort_values(["open", "resolved", "saga type", "step"],
                              ascending=[False, False, True, True])
    return frame.reset_index(drop=True)


def _ack_text(ack: Acknowledgement) -> str:
    when = f"{ack.at:%Y-%m-%d %H:%M} UTC"
    if ack.action == "silenced" and ack.until is not None:
        return f"silenced by {ack.by} at {when} until {ack.until:%H:%M} UTC"
    return f"acknowledged by {ack.by} at {when}"


def alerts_table(alerts: Sequence[Alert]) -> pd.DataFrame:
    frame = tables.frame(alerts)
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
    chosen = tables.selected_row(event)
    if chosen is not None:
        links.open_flow(str(table["saga"].iloc[chosen]))


def _group_actions(group: pd.Series) -> None:
    saga_type, step = str(group["saga type"]), str(group["step"])
    with st.container(border=True):
        st.markdown(f"**{tables.escape_md(saga_type)} · {tables.escape_md(step)}**: "
                    f"{int(group['open'])} open, {int(group['resolved'])} resolved"
                    + (f" · {group['handled']}" if group["handled"] else ""))
        cols = st.columns([2, 1, 1.2, 1, 1.3], vertical_alignment="bottom")
        who = cols[0].text_input("Your name", key="ack_by", placeholder="who is handling it")
        silence = cols[2].selectbox("Silence for", list(SILENCES), key="silence_for")
        action: tuple[str, datetime | None] | None = None
        if cols[1].button("Acknowledge", type="primary", key="ack_button"):
            action = ("acknowledged", None)
        if cols[3].button("Silence", key="silence_button"):
            action = ("silenced", datetime.now(UTC) + SILENCES[str(silence)])
        if cols[4].button("Open its sagas", key="group_sagas"):
            links.open_sagas(type=saga_type, at=step, status="stalled", range="all")
        if group["handled"] and st.button("Clear acknowledgement", key="ack_clear"):
            action = ("cleared", None)
        if action is not None:
            try:
                acknowledge(runtime.writer(), saga_type, step, action=action[0], by=who,
                            until=action[1])
            except QueryError as exc:
                st.warning(str(exc), icon=":material/person:")
                return
            st.rerun()


def render() -> None:
    st.title("Alerts")
    answers = ask()
    since = url_state.range_start()
    saga_type = url_state.saga_type()
    open_alerts = answers.alerts(saga_type=saga_type, state="open", since=since, limit=ALERT_LIMIT)
    resolved = answers.alerts(saga_type=saga_type, state="resolved", since=since, limit=ALERT_LIMIT)
    groups = alert_groups(open_alerts, resolved, answers.acknowledgements())
    cols = st.columns(4)
    cols[0].metric("Open", f"{len(open_alerts):,}")
    cols[1].metric("Resolved", f"{len(resolved):,}")
    cols[2].metric("Groups (saga type · step)", len(groups))
    cols[3].metric("Groups handled", int((groups["handled"] != "").sum()) if len(groups) else 0)
    st.caption(f"Alerts opened or changed in the {url_state.time_range_label().lower()}.")
    st.subheader("By saga type and step")
    if groups.empty:
        st.success("No alerts in this range.", icon=":material/notifications_off:")
        return
    event = st.dataframe(
        groups, hide_index=True, width="stretch", key="alert_groups", on_select="rerun",
        selection_mode="single-row",
        column_config={name: _TIMES[name] for name in ("silent since", "newest opened")},
    )
    chosen = tables.selected_row(event)
    if chosen is None:
        st.caption("Select a group to acknowledge or silence it, or to list its sagas.")
    else:
        _group_actions(groups.iloc[chosen])
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
    chrome.live(render)
