"""Alerts: grouped by saga type and step (a storm reads as a handful of lines), each group's
state and who handles it first on its row; open, silenced and resolved groups apart; each alert
opens its flow; the history of acknowledgements and silences below.

Plain HTML tables and links: a group's row opens ``?handle_type=&handle_step=``, the one place
with widgets (the acknowledge/silence form for that group), so a first visit loads no data
grid and no widget scripts (bench_browser_parts.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from html import escape

import pandas as pd
import streamlit as st

from sagascope.dashboard import cached_queries, chrome, figures, links, runtime, tables, tiles, url_state
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

#: A group's state as its row shows it: a marker that reads without colour.
STATE_MARKS = {
    "open": "● open",
    "acknowledged": "◐ acknowledged",
    "silenced": "◌ silenced",
    "resolved": "✓ resolved",
}
#: The URL parameters naming the group being handled.
HANDLE_TYPE, HANDLE_STEP = "handle_type", "handle_step"
#: Alerts listed (newest first); the counts above cover all.
ALERTS_SHOWN = 100


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


def _page_url(**params: str) -> str:
    """This page with the sidebar's filters and ``params``."""
    return links.page_url("alerts", **url_state.sidebar_params(), **params)


def _choose_view(groups: Sequence[AlertGroup]) -> str:
    """Which groups to show (``?show=``), and links to the other views with their counts."""
    chosen = str(st.query_params.get("show", DEFAULT_VIEW))
    view = chosen if chosen in VIEWS else DEFAULT_VIEW
    choices = []
    for name, states in VIEWS.items():
        text = escape(f"{name} ({_groups_text(sum(1 for g in groups if g.state in states))})")
        choices.append(f"<b>{text}</b>" if name == view else
                       f'<a href="{escape(_page_url(show=name))}" target="_self">{text}</a>')
    st.markdown(f'<div class="alert-views" title="open groups include acknowledged ones; '
                f'silenced groups are apart until their silence ends">Show: '
                f'{" · ".join(choices)}</div>', unsafe_allow_html=True)
    return view


def _groups_text(n: int) -> str:
    return f"{n} group" if n == 1 else f"{n} groups"


def _group_key(group: AlertGroup) -> str:
    return f"{group.saga_type} · {group.step}"


def _handle_url(group: AlertGroup, view: str) -> str:
    return _page_url(show=view if view != DEFAULT_VIEW else "",
                     **{HANDLE_TYPE: group.saga_type, HANDLE_STEP: group.step})


def _groups(shown: Sequence[AlertGroup], now: datetime, view: str) -> None:
    """The groups; a row opens the form that acknowledges or silences that group."""
    table = groups_table(shown, now)[list(_COLUMNS_IN_VIEW[view])]
    st.html(tables.html_table(table, key="status", numeric=("open", "resolved"),
                              label="Alert groups",
                              row_link=lambda i: _handle_url(shown[i], view)))
    st.caption("Click a group to acknowledge or silence it.")


def _handled(groups: Sequence[AlertGroup]) -> AlertGroup | None:
    """The group the URL asks to handle, if it is one of these."""
    saga_type, step = st.query_params.get(HANDLE_TYPE), st.query_params.get(HANDLE_STEP)
    return next((g for g in groups if (g.saga_type, g.step) == (saga_type, step)), None)


def _handling_form(group: AlertGroup, now: datetime, view: str) -> None:
    """Acknowledge, silence or clear one group; the name, a note, how long a silence lasts."""
    with st.container(border=True):
        summary = f"**{tables.escape_md(_group_key(group))}**: {STATE_MARKS[group.state]}"
        if group.handled_by:
            summary += f" by {tables.escape_md(handled_text(group, now))}"
        summary += f" · {group.open} open, {group.resolved} resolved"
        if group.waiting_text:
            summary += f" · waiting for {tables.escape_md(group.waiting_text)}"
        if group.note:
            summary += f" · note: {tables.escape_md(group.note)}"
        sagas = links.sagas_url(type=group.saga_type, at=group.step, status="stalled",
                                range="all")
        back = _page_url(show=view if view != DEFAULT_VIEW else "")
        st.markdown(f"{summary}  \n[Open its stalled sagas]({sagas}) · [Close]({back})")
        cols = st.columns([1.5, 2, 1, 1, 1], vertical_alignment="bottom")
        who = cols[0].text_input("Your name", key="ack_by", placeholder="who is handling it")
        note = cols[1].text_input("Note", key="ack_note", placeholder="why, what you are doing")
        silence = cols[3].selectbox("Silence for", list(SILENCES), key="silence_for")
        action: tuple[str, datetime | None] | None = None
        if cols[2].button("Acknowledge", type="primary", key="ack_button"):
            action = ("acknowledged", None)
        if cols[4].button("Silence", key="silence_button"):
            action = ("silenced", datetime.now(UTC) + SILENCES[str(silence)])
        if group.handled_by and st.button("Clear", key="ack_clear",
                                          help="end the acknowledgement or silence"):
            action = ("cleared", None)
        if action is None:
            return
        try:
            acknowledge(runtime.writer(), group.saga_type, group.step, action=action[0],
                        by=who, until=action[1], note=note)
        except QueryError as exc:
            st.warning(str(exc), icon=":material/person:")
            return
        st.toast(f"{_group_key(group)}: {action[0]} by {who.strip()}", icon=":material/check:")
        del st.session_state["ack_note"]  # the note was for this action; the name stays
        # Done: back to the list, where the group's row shows who handles it.
        for param in (HANDLE_TYPE, HANDLE_STEP):
            del st.query_params[param]
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
    if len(alerts) > ALERTS_SHOWN:
        st.caption(f"The {ALERTS_SHOWN} listed first of {len(alerts):,}.")
    shown = alerts[:ALERTS_SHOWN]
    table = alerts_table(shown, states)
    if view in ("open", "silenced"):
        table = table.drop(columns=["resolved", "resolution"])
    keep = url_state.sidebar_params()
    st.html(tables.html_table(
        table, label="Alerts",
        row_link=lambda i: links.flow_url(shown[i].saga_id, **keep)))
    st.caption("Click an alert to open its saga's flow.")


def render() -> None:
    st.title("Alerts")
    since = url_state.range_start()
    saga_type = url_state.saga_type()
    q = cached_queries.queries()
    # Silences end on the clock, not with the data: the real now.
    now = datetime.now(UTC)
    groups = q.alert_groups(since=since, saga_type=saga_type, now=now)
    counts = AlertCounts.of(groups)
    tiles.tiles([
        tiles.Tile("Open alerts", counts.open,
                   help="open alerts not under a silence, acknowledged ones included"),
        tiles.Tile("Acknowledged (of open)", counts.acknowledged,
                   help="open alerts of groups someone acknowledged"),
        tiles.Tile("Silenced alerts", counts.silenced,
                   help="open alerts of silenced groups: not counted as open, not notified"),
        tiles.Tile("Resolved alerts", counts.resolved),
    ])
    st.caption(f"Open and silenced alerts whenever they opened; resolved ones: "
               f"{url_state.time_range_label().lower()}.")
    if not groups:
        st.success("No alerts in this range.", icon=":material/notifications_off:")
        return
    st.subheader("By saga type and step")
    view = _choose_view(groups)
    handled = _handled(groups)
    if handled is not None:
        _handling_form(handled, now, view)
    shown = [g for g in groups if g.state in VIEWS[view]]
    if shown:
        _groups(shown, now, view)
    else:
        st.caption(f"No {view} groups.")
    _alerts_of_view(view, groups, saga_type, since)
    st.subheader("Acknowledgements and silences")
    history = q.acknowledgement_history(saga_type=saga_type, since=since, limit=HISTORY_LIMIT)
    if history:
        st.html(tables.html_table(history_table(history), label="Acknowledgements and silences",
                                  key="action", time_format="%Y-%m-%d %H:%M:%S"))
    else:
        st.caption("Nobody acknowledged or silenced a group in this range.")


if __name__ == "__main__":
    chrome.live(render)
