"""Alerts: grouped by saga type and step (a storm reads as a handful of lines), each group's
state and who handles it first on its row; open, silenced and resolved groups apart; each alert
opens its flow; the history of acknowledgements and silences below."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from sagascope.dashboard import cached_queries, chrome, figures, links, runtime, tables, url_state
from sagascope.queries import (
    Acknowledgement,
    Alert,
    AlertCounts,
    AlertGroup,
    QueryError,
    acknowledge,
)

#: Silence choices (label -> length).
SILENCES = {"1 hour": timedelta(hours=1), "4 hours": timedelta(hours=4),
            "24 hours": timedelta(hours=24)}

#: Alerts read per state (newest first).
ALERT_LIMIT = 5000
#: Acknowledgements and silences listed in the history.
HISTORY_LIMIT = 200

#: Which groups the page shows (``?show=``) -> the group states they hold.
VIEWS = {
    "open": ("open", "acknowledged"),
    "silenced": ("silenced",),
    "resolved": ("resolved",),
    "all": ("open", "acknowledged", "silenced", "resolved"),
}
DEFAULT_VIEW = "open"
#: The group columns of each view, state and handling first; what says nothing in a view
#: (nothing is open in a resolved group) left out, what matters there early.
_OPEN_COLUMNS = ("status", "handled by", "saga type", "step", "open", "waiting for",
                 "silent since", "resolved", "note", "example")
_COLUMNS_IN_VIEW: dict[str, tuple[str, ...]] = {
    "open": _OPEN_COLUMNS,
    "silenced": _OPEN_COLUMNS,
    "resolved": ("status", "handled by", "saga type", "step", "resolved", "last resolved",
                 "waiting for", "note", "example"),
    "all": ("status", "handled by", "saga type", "step", "open", "waiting for",
            "silent since", "resolved", "last resolved", "note", "example"),
}

#: A group's state as its row shows it: a marker that reads without colour, and its colours.
STATE_MARKS = {
    "open": "● open",
    "acknowledged": "◐ acknowledged",
    "silenced": "◌ silenced",
    "resolved": "✓ resolved",
}
_STATE_STYLE = {
    "open": "background-color: #ffe3e3; color: #a51d2d; font-weight: 600",
    "acknowledged": "background-color: #fff3bf; color: #7a5500; font-weight: 600",
    "silenced": "background-color: #e9ecef; color: #495057",
    "resolved": "background-color: #d3f9d8; color: #2b7a3d",
}
#: Rows of silenced and resolved groups are greyed: nobody needs to act on them.
_QUIET_ROW = "color: #868e96"

_TIME = st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")
#: Wide enough for "◐ acknowledged".
_STATUS_PX = 135
_GROUP_COLUMNS = {
    "status": st.column_config.TextColumn(width=_STATUS_PX, pinned=True,
                                          help="open · acknowledged · silenced · resolved"),
    "handled by": st.column_config.TextColumn(
        width="medium",
        help="who acknowledged or silenced the group, when (UTC), and until when"),
    "open": st.column_config.NumberColumn(width="small", help="alerts open now"),
    "waiting for": st.column_config.TextColumn(
        width="large", help="what the group's open alerts wait for, counted per message"),
    "silent since": _TIME,
    "resolved": st.column_config.NumberColumn(width="small",
                                              help="alerts resolved in the time range"),
    "last resolved": _TIME,
}


def _when(moment: datetime, now: datetime) -> str:
    """``08:12`` today, ``Dec 06 08:12`` on another day (UTC)."""
    if moment.date() == now.date():
        return f"{moment:%H:%M}"
    return f"{moment:%b %d %H:%M}"


def handled_text(group: AlertGroup, now: datetime) -> str:
    """``sam at 08:12 UTC``; a silence adds ``, until 09:12 UTC``; empty when nobody handles it."""
    return group.handled_text(lambda moment: _when(moment, now))


def groups_table(groups: Sequence[AlertGroup], now: datetime) -> pd.DataFrame:
    """One row per group: its state and handling first, so they show without scrolling."""
    return pd.DataFrame({
        "status": [STATE_MARKS[g.state] for g in groups],
        "handled by": [handled_text(g, now) for g in groups],
        "saga type": [g.saga_type for g in groups],
        "step": [g.step for g in groups],
        "open": [g.open for g in groups],
        "waiting for": [g.waiting_text for g in groups],
        "silent since": [g.oldest_since for g in groups],
        "resolved": [g.resolved for g in groups],
        "last resolved": [g.last_resolved for g in groups],
        "note": [g.note for g in groups],
        "example": [g.example_saga_id for g in groups],
    }, columns=["status", "handled by", "saga type", "step", "open", "waiting for", "silent since",
                "resolved", "last resolved", "note", "example"])


def _styled(table: pd.DataFrame, states: Sequence[str]) -> Styler:
    """The status cell coloured by state; rows nobody needs to act on greyed."""

    def row_style(row: pd.Series) -> list[str]:
        state = states[int(str(row.name))]
        quiet = _QUIET_ROW if state in ("silenced", "resolved") else ""
        return [_STATE_STYLE[state] if col == "status" else quiet for col in row.index]

    return table.style.apply(row_style, axis=1)


def alerts_table(alerts: Sequence[Alert], states: dict[tuple[str, str], str]) -> pd.DataFrame:
    """One row per alert, its group's state first."""
    frame = tables.frame(alerts)
    return pd.DataFrame({
        "status": [STATE_MARKS[_state_of(a, states)] for a in alerts],
        "saga": frame["saga_id"],
        "saga type": frame["saga_type"],
        "stalled after": frame["step"],
        # Before the rest: in the resolved view what happened matters first.
        # Text (ISO, so it sorts): an open alert's reads as nothing rather than "None".
        "resolved": [_time_text(a.resolved_at) for a in alerts],
        "resolution": frame["resolution"],
        "waiting for": frame["waiting_for"],
        "silent since": frame["since"],
        "threshold": frame["threshold_s"].map(figures.format_duration),
        "opened": frame["opened_at"],
    })


def _time_text(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment is not None else ""


def _state_of(alert: Alert, group_states: dict[tuple[str, str], str]) -> str:
    """An open alert takes its group's state (open, acknowledged, silenced)."""
    if alert.state != "open":
        return "resolved"
    return group_states.get((alert.saga_type, alert.step), "open")


def history_table(history: Sequence[Acknowledgement]) -> pd.DataFrame:
    return pd.DataFrame({
        "at": [a.at for a in history],
        "action": [a.action for a in history],
        "by": [a.by for a in history],
        "saga type": [a.saga_type for a in history],
        "step": [a.step for a in history],
        # Text: an acknowledgement's missing end reads as nothing rather than "None".
        "until": [_time_text(a.until) for a in history],
        "note": [a.note for a in history],
    }, columns=["at", "action", "by", "saga type", "step", "until", "note"])


def _choose_view(groups: Sequence[AlertGroup]) -> str:
    key = url_state.url_bound("show", DEFAULT_VIEW, strict=True)
    if st.session_state.get(key) not in VIEWS:
        st.session_state[key] = DEFAULT_VIEW
    in_view = {view: sum(1 for g in groups if g.state in states)
               for view, states in VIEWS.items()}
    st.segmented_control("Show", list(VIEWS), key=key, required=True,
                         format_func=lambda view: f"{view} ({_groups_text(in_view[view])})",
                         help="open groups include acknowledged ones; silenced groups are "
                              "apart until their silence ends")
    url_state.sync_url({"show": DEFAULT_VIEW})
    return str(st.session_state.get(key) or DEFAULT_VIEW)


def _groups_text(n: int) -> str:
    return f"{n} group" if n == 1 else f"{n} groups"


def _group_key(group: AlertGroup) -> str:
    return f"{group.saga_type} · {group.step}"


def _groups_grid(shown: Sequence[AlertGroup], now: datetime, view: str) -> None:
    """The groups, selectable: selecting one picks it for the actions below."""
    table = groups_table(shown, now)[list(_COLUMNS_IN_VIEW[view])]
    generation = int(st.session_state.get("_alert_groups_generation", 0))
    event = st.dataframe(
        _styled(table, [g.state for g in shown]), hide_index=True, width="stretch",
        key=f"alert_groups_{generation}", on_select="rerun", selection_mode="single-row",
        column_config=_GROUP_COLUMNS,
    )
    chosen = tables.selected_row(event)
    # Follow a new selection only: a refresh that reorders the rows keeps the group picked.
    if chosen is not None and chosen != st.session_state.get("_alert_groups_row"):
        st.session_state["alert_group"] = _group_key(shown[chosen])
    st.session_state["_alert_groups_row"] = chosen


def _group_actions(groups: Sequence[AlertGroup], now: datetime) -> None:
    by_key = {_group_key(g): g for g in groups}
    if st.session_state.get("alert_group") not in by_key:
        st.session_state["alert_group"] = None
    with st.container(border=True):
        picked = st.selectbox("Acknowledge or silence a group", list(by_key), key="alert_group",
                              placeholder="select a row above, or pick a group here")
        if picked is None:
            return
        group = by_key[str(picked)]
        state = group.state
        summary = f"**{STATE_MARKS[state]}**"
        if group.handled_by:
            summary += f" by {tables.escape_md(handled_text(group, now))}"
        summary += f" · {group.open} open, {group.resolved} resolved"
        if group.waiting_text:
            summary += f" · waiting for {tables.escape_md(group.waiting_text)}"
        if group.note:
            summary += f" · note: {tables.escape_md(group.note)}"
        st.markdown(summary)
        cols = st.columns([1.5, 2, 1, 1, 1], vertical_alignment="bottom")
        who = cols[0].text_input("Your name", key="ack_by", placeholder="who is handling it")
        note = cols[1].text_input("Note", key="ack_note", placeholder="why, what you are doing")
        silence = cols[3].selectbox("Silence for", list(SILENCES), key="silence_for")
        action: tuple[str, datetime | None] | None = None
        if cols[2].button("Acknowledge", type="primary", key="ack_button"):
            action = ("acknowledged", None)
        if cols[4].button("Silence", key="silence_button"):
            action = ("silenced", datetime.now(UTC) + SILENCES[str(silence)])
        more = st.columns([1, 1, 4])
        if group.handled_by and more[0].button("Clear", key="ack_clear",
                                               help="end the acknowledgement or silence"):
            action = ("cleared", None)
        if more[1].button("Open its sagas", key="group_sagas"):
            links.open_sagas(type=group.saga_type, at=group.step, status="stalled", range="all")
        if action is not None:
            try:
                acknowledge(runtime.writer(), group.saga_type, group.step, action=action[0],
                            by=who, until=action[1], note=note)
            except QueryError as exc:
                st.warning(str(exc), icon=":material/person:")
                return
            st.toast(f"{_group_key(group)}: {action[0]} by {who.strip()}",
                     icon=":material/check:")
            # A new grid: its rows may move, so no stale row stays highlighted.
            st.session_state["_alert_groups_generation"] = (
                int(st.session_state.get("_alert_groups_generation", 0)) + 1)
            st.session_state["_alert_groups_row"] = None
            del st.session_state["ack_note"]  # the note was for this action; the name stays
            st.rerun()


def _alerts_of_view(view: str, groups: Sequence[AlertGroup], saga_type: str | None,
                    since: datetime | None) -> None:
    ask = cached_queries.ask()
    states = {(g.saga_type, g.step): g.state for g in groups}
    wanted = VIEWS[view]
    alerts: list[Alert] = []
    if view != "resolved":
        alerts += [a for a in ask.alerts(saga_type=saga_type, state="open", since=None,
                                         limit=ALERT_LIMIT)
                   if states.get((a.saga_type, a.step)) in wanted]
    if "resolved" in wanted:
        alerts += ask.alerts(saga_type=saga_type, state="resolved", since=since,
                             limit=ALERT_LIMIT)
    st.subheader(f"Alerts ({view})")
    if not alerts:
        st.caption(f"No {view} alerts." if view != "all" else "No alerts.")
        return
    table = alerts_table(alerts, states)
    if view in ("open", "silenced"):
        table = table.drop(columns=["resolved", "resolution"])
    alert_states = [_state_of(a, states) for a in alerts]
    event = st.dataframe(
        _styled(table, alert_states), hide_index=True, width="stretch", key=f"alerts_{view}",
        on_select="rerun", selection_mode="single-row",
        column_config={"status": st.column_config.TextColumn(width=_STATUS_PX, pinned=True),
                       **{name: _TIME for name in ("silent since", "opened")}},
    )
    chosen = tables.selected_row(event)
    if chosen is not None:
        links.open_flow(str(table["saga"].iloc[chosen]))


def render() -> None:
    st.title("Alerts")
    since = url_state.range_start()
    saga_type = url_state.saga_type()
    q = cached_queries.queries()
    # Silences end on the clock, not with the data: the real now.
    now = datetime.now(UTC)
    groups = q.alert_groups(since=since, saga_type=saga_type, now=now)
    counts = AlertCounts.of(groups)
    cols = st.columns(4)
    cols[0].metric("Open alerts", f"{counts.open:,}",
                   help="open alerts not under a silence, acknowledged ones included")
    cols[1].metric("Acknowledged (of open)", f"{counts.acknowledged:,}",
                   help="open alerts of groups someone acknowledged")
    cols[2].metric("Silenced alerts", f"{counts.silenced:,}",
                   help="open alerts of silenced groups: not counted as open, not notified")
    cols[3].metric("Resolved alerts", f"{counts.resolved:,}")
    st.caption(f"Open and silenced alerts whenever they opened; resolved ones: "
               f"{url_state.time_range_label().lower()}.")
    if not groups:
        st.success("No alerts in this range.", icon=":material/notifications_off:")
        return
    st.subheader("By saga type and step")
    view = _choose_view(groups)
    shown = [g for g in groups if g.state in VIEWS[view]]
    if shown:
        _groups_grid(shown, now, view)
    else:
        st.success(f"No {view} groups.", icon=":material/notifications_off:")
    _group_actions(groups, now)
    _alerts_of_view(view, groups, saga_type, since)
    st.subheader("Acknowledgements and silences")
    history = q.acknowledgement_history(saga_type=saga_type, since=since, limit=HISTORY_LIMIT)
    if history:
        st.dataframe(history_table(history), hide_index=True, width="stretch",
                     key="ack_history", column_config={"at": _TIME})
    else:
        st.caption("Nobody acknowledged or silenced a group in this range.")


if __name__ == "__main__":
    chrome.live(render)
