"""Alerts: grouped by saga type and step (a storm reads as a handful of lines), open groups
apart from silenced ones, who handled each group on its row; open and resolved alerts within
the sidebar's time range, each opening its flow; the acknowledgements made."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

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
#: A group's column order: what it is and who handles it first, so both show at 1440 px.
GROUP_COLUMNS = ["saga type", "step", "handled", "open", "resolved", "waiting for",
                 "silent since", "newest opened", "example", "silenced"]


def waiting_counts(alerts: Sequence[Alert]) -> str:
    """What a group's alerts wait for, most frequent first: ``PaymentReceived ×3 · ...``."""
    counts = Counter(a.waiting_for or "(unknown)" for a in alerts)
    return " · ".join(f"{what} ×{n}" for what, n in counts.most_common())


def alert_groups(open_alerts: Sequence[Alert], resolved: Sequence[Alert],
                 acks: Mapping[tuple[str, str], Acknowledgement] | None = None,
                 now: datetime | None = None) -> pd.DataFrame:
    """One row per (saga type, step): who handles it, open and resolved counts, what its
    open alerts wait for (counts per message), oldest silence, an example, and whether a
    silence is on (``silenced``: such a group is listed apart and not counted as open)."""
    members: dict[tuple[str, str], list[Alert]] = {}
    for alert in [*open_alerts, *resolved]:
        members.setdefault((alert.saga_type, alert.step), []).append(alert)
    acks = acks or {}
    moment = now or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for (saga_type, step), alerts in members.items():
        opened = [a for a in alerts if a.state == "open"]
        oldest = min(opened or alerts, key=lambda a: a.since)
        ack = acks.get((saga_type, step))
        active = ack is not None and ack.active(moment)
        rows.append({
            "saga type": saga_type, "step": step,
            "handled": _ack_text(ack) if ack is not None and active else "",
            "open": len(opened), "resolved": len(alerts) - len(opened),
            "waiting for": waiting_counts(opened or alerts),
            "silent since": oldest.since,
            "newest opened": max(a.opened_at for a in alerts),
            "example": oldest.saga_id,
            "silenced": bool(active and ack is not None and ack.action == "silenced"),
        })
    frame = pd.DataFrame(rows, columns=GROUP_COLUMNS)
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


def _groups_table(groups: pd.DataFrame) -> None:
    """The groups as a plain table: every column wraps to fit the page (nothing cut, who
    handles a group readable on its row at 1440 px), and it is light to draw."""
    shown = groups.drop(columns=["silenced", "example"]).copy()
    for column in ("silent since", "newest opened"):
        shown[column] = pd.to_datetime(shown[column], utc=True).dt.strftime("%Y-%m-%d %H:%M:%S")
    shown["handled"] = shown["handled"].replace("", "–")
    st.table(shown.set_index(["saga type", "step"]))


def _group_label(group: pd.Series) -> str:
    state = " · silenced" if group["silenced"] else (" · handled" if group["handled"] else "")
    return (f"{group['saga type']} · {group['step']} ({int(group['open'])} open, "
            f"{int(group['resolved'])} resolved{state})")


def _choose_group(groups: pd.DataFrame) -> pd.Series | None:
    """The group to act on, picked by name (its key in the URL: ``?group=type/step``)."""
    names = [f"{t}/{s}" for t, s in zip(groups["saga type"], groups["step"], strict=True)]
    key = url_state.url_bound("group", "", strict=True)
    if st.session_state.get(key) not in ["", *names]:
        st.session_state[key] = ""
    labels = dict(zip(names, (_group_label(g) for _, g in groups.iterrows()), strict=True))
    st.selectbox("Act on a group", ["", *names], key=key,
                 format_func=lambda n: labels.get(n, "choose a group to acknowledge, silence "
                                                    "or list its sagas"))
    url_state.sync_url({"group": ""})
    chosen = str(st.session_state.get(key) or "")
    return groups.iloc[names.index(chosen)] if chosen else None


def _group_actions(group: pd.Series) -> None:
    saga_type, step = str(group["saga type"]), str(group["step"])
    with st.container(border=True):
        st.markdown(f"**{tables.escape_md(saga_type)} · {tables.escape_md(step)}**: "
                    f"{int(group['open'])} open, {int(group['resolved'])} resolved"
                    + (f" · {group['handled']}" if group["handled"] else "")
                    + f"  \nWaiting for: {tables.escape_md(group['waiting for'])}")
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


def _history() -> None:
    history = ask().acknowledgement_history()
    with st.expander(f"Acknowledgements ({len(history)})", expanded=False):
        if not history:
            st.caption("No group was acknowledged or silenced yet.")
            return
        st.dataframe(pd.DataFrame({
            "at": [a.at for a in history], "action": [a.action for a in history],
            "by": [a.by for a in history], "saga type": [a.saga_type for a in history],
            "step": [a.step for a in history], "until": [a.until for a in history],
        }), hide_index=True, width="stretch", key="ack_history", column_config={
            "at": _TIMES["opened"], "until": _TIMES["opened"]})
        st.caption("Newest first, as far as the store keeps them: it merges a group's older "
                   "actions away in the background (the latest always stays).")


def render() -> None:
    st.title("Alerts")
    answers = ask()
    since = url_state.range_start()
    saga_type = url_state.saga_type()
    open_alerts = answers.alerts(saga_type=saga_type, state="open", since=since,
                                 limit=ALERT_LIMIT)
    resolved = answers.alerts(saga_type=saga_type, state="resolved", since=since,
                              limit=ALERT_LIMIT)
    groups = alert_groups(open_alerts, resolved, answers.acknowledgements())
    silenced = groups[groups["silenced"]] if len(groups) else groups
    active = groups[~groups["silenced"]] if len(groups) else groups
    cols = st.columns(4)
    cols[0].metric("Open", f"{int(active['open'].sum()) if len(active) else 0:,}",
                   help="open alerts of groups not silenced")
    cols[1].metric("Silenced", f"{int(silenced['open'].sum()) if len(silenced) else 0:,}",
                   help="open alerts of silenced groups")
    cols[2].metric("Resolved", f"{len(resolved):,}")
    cols[3].metric("Groups handled", int((groups["handled"] != "").sum()) if len(groups) else 0)
    st.caption(f"Alerts opened or changed: {url_state.time_range_label().lower()}.")
    st.subheader("By saga type and step")
    if groups.empty:
        st.success("No alerts in this range.", icon=":material/notifications_off:")
        _history()
        return
    if len(active):
        _groups_table(active)
    else:
        st.success("Every group with alerts is silenced.", icon=":material/notifications_off:")
    if len(silenced):
        st.markdown(f"**Silenced** ({len(silenced)} group{'s' if len(silenced) > 1 else ''}, "
                    "not counted as open)")
        _groups_table(silenced)
    chosen = _choose_group(pd.concat([active, silenced]))
    if chosen is not None:
        _group_actions(chosen)
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
    _history()


if __name__ == "__main__":
    chrome.live(render)
