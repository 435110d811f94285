"""Alert history is a question too: the ``Alert`` type, reading the ``alerts`` table, flow links,
alert groups with their handling (acknowledgements and silences), and that handling's history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sagascope.queries.exceptions import QueryError
from sagascope.queries.results import GROUP_STATES, AlertGroup
from sagascope.queries.rows import from_store_columns
from sagascope.store import Store, StoreReader
from sagascope.store.timetext import as_utc, format_time

__all__ = [
    "ACK_ACTIONS",
    "ALERT_COLUMNS",
    "STATE_OPEN",
    "STATE_RESOLVED",
    "Acknowledgement",
    "Alert",
    "acknowledge",
    "acknowledgement_history",
    "acknowledgements",
    "alert_groups",
    "alert_row",
    "flow_link",
    "list_alerts",
    "open_alert_since",
    "waited_message",
]

STATE_OPEN = "open"
STATE_RESOLVED = "resolved"

ALERT_COLUMNS = (
    "alert_id", "state", "saga_id", "saga_type", "step", "waiting_for", "since",
    "threshold_s", "opened_at", "resolved_at", "resolution", "link", "updated_at",
)


def flow_link(dashboard_url: str, saga_id: str) -> str:
    """The dashboard's flow explorer for one saga."""
    return f"{dashboard_url.rstrip('/')}/flow_explorer?saga={quote(saga_id, safe='')}"


@dataclass(frozen=True)
class Alert:
    """One alert: a saga silent after ``step`` for longer than ``threshold_s``."""

    alert_id: str
    #: ``open`` or ``resolved``
    state: str
    saga_id: str
    saga_type: str
    #: The step the saga is stalled after, and what it is waiting for (e.g. the reply to it).
    step: str
    waiting_for: str
    #: Kafka time of the saga's last message: silent since then.
    since: datetime
    threshold_s: float
    opened_at: datetime
    link: str
    updated_at: datetime
    last_type: str = ""
    #: ``rule``, ``learned`` or ``default``: where the threshold came from.
    threshold_source: str = ""
    silent_s: float = 0.0
    resolved_at: datetime | None = None
    #: Why it resolved: ``moved on`` or the saga's final status.
    resolution: str = ""

    @property
    def event(self) -> str:
        return "opened" if self.state == STATE_OPEN else "resolved"

    def to_json(self) -> dict[str, Any]:
        """The alert as the webhook and Kafka sinks send it (times as every sink writes them:
        ``format_time``, RFC 3339 with milliseconds)."""
        out = asdict(self)
        out["event"] = self.event
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = format_time(value)
        return out


def alert_row(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "state": alert.state,
        "saga_id": alert.saga_id,
        "saga_type": alert.saga_type,
        "step": alert.step,
        "waiting_for": alert.waiting_for,
        "since": alert.since,
        "threshold_s": alert.threshold_s,
        "opened_at": alert.opened_at,
        "resolved_at": alert.resolved_at,
        "resolution": alert.resolution,
        "link": alert.link,
        "updated_at": alert.updated_at,
    }


def list_alerts(
    store: StoreReader,
    *,
    state: str | None = None,
    since: datetime | None = None,
    limit: int | None = 100,
    saga_type: str | None = None,
    saga_ids: Sequence[str] | None = None,
) -> list[Alert]:
    """Alerts in their latest state: open ones first (newest opened first), then resolved ones
    (most recently resolved first).

    Args:
        state: ``open`` or ``resolved``; None for both.
        since: only alerts opened or changed at or after this time.
        limit: at most this many; None for all.
        saga_type: only alerts of this saga type; None for all.
        saga_ids: only alerts of these sagas; None for all.
    """
    if state not in (None, STATE_OPEN, STATE_RESOLVED):
        raise QueryError(f"alert state must be 'open' or 'resolved', got {state!r}")
    if limit is not None and limit < 1:
        raise QueryError(f"limit must be >= 1, got {limit}")
    params: dict[str, Any] = {
        "state": state or "",
        "saga_type": saga_type or "",
        "since": _epoch_s(since),
    }
    of_sagas = ""
    if saga_ids is not None:
        of_sagas = "AND saga_id IN {saga_ids:Array(String)} "
        params["saga_ids"] = list(saga_ids)
    sql = (
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts FINAL "
        "WHERE ({state:String} = '' OR state = {state:String}) "
        "AND ({saga_type:String} = '' OR saga_type = {saga_type:String}) "
        "AND updated_at >= toDateTime64({since:Float64}, 3, 'UTC') "
        f"{of_sagas}"
        "ORDER BY state = 'open' DESC, coalesce(resolved_at, opened_at) DESC, alert_id"
    )
    if limit is not None:
        sql += " LIMIT {limit:UInt32}"
        params["limit"] = limit
    rows = store.query(sql, params).dicts()
    return [_alert_from_row(row) for row in rows]


def open_alert_since(store: StoreReader) -> dict[str, int]:
    """Each saga with an open alert, and when it went silent (the alert's ``since``, epoch
    milliseconds): what the alerter compares with the stalled sagas, without whole alerts."""
    rows = store.query(
        "SELECT saga_id, toUnixTimestamp64Milli(since) FROM alerts FINAL "
        "WHERE state = {state:String}",
        {"state": STATE_OPEN},
    ).rows
    return {saga_id: int(since_ms) for saga_id, since_ms in rows}


def _alert_from_row(row: Mapping[str, Any]) -> Alert:
    return from_store_columns(Alert, row)


#: What a person can do to an alert group.
ACK_ACTIONS = ("acknowledged", "silenced", "cleared")

#: Longest note kept with an acknowledgement.
NOTE_MAX_CHARS = 500


@dataclass(frozen=True)
class Acknowledgement:
    """An action on an alert group (saga type, step): who, when, until when, and why."""

    saga_type: str
    step: str
    action: str
    by: str
    at: datetime
    until: datetime | None = None
    note: str = ""

    def active(self, now: datetime) -> bool:
        """Acknowledged, or silenced and the silence not over yet."""
        if self.action == "acknowledged":
            return True
        return self.action == "silenced" and self.until is not None and self.until > now


def _ack_from_row(row: Sequence[Any]) -> Acknowledgement:
    saga_type, step, action, by, at, until, note = row
    return Acknowledgement(saga_type, step, action, by, as_utc(at),
                           as_utc(until) if until is not None else None, note)


def acknowledgements(store: StoreReader) -> dict[tuple[str, str], Acknowledgement]:
    """The latest action per alert group, by (saga type, step)."""
    # One tuple, not one argMax per column: argMax skips NULLs, so argMax(until, at) would
    # return an older silence's end after a later acknowledgement.
    rows = store.query(
        "SELECT saga_type, step, latest.1, latest.2, latest.3, latest.4, latest.5 FROM ("
        "SELECT saga_type, step, argMax(tuple(action, by, at, until, note), at) AS latest "
        "FROM alert_acks GROUP BY saga_type, step)"
    ).rows
    return {(r[0], r[1]): _ack_from_row(r) for r in rows}


def acknowledgement_history(
    store: StoreReader,
    *,
    saga_type: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
) -> list[Acknowledgement]:
    """Every acknowledgement, silence and clearing, newest first.

    Args:
        saga_type: only those of this saga type; None for all.
        since: only those made at or after this time; None for all.
        limit: at most this many.
    """
    if limit < 1:
        raise QueryError(f"limit must be >= 1, got {limit}")
    rows = store.query(
        "SELECT saga_type, step, action, by, at, until, note FROM alert_acks "
        "WHERE ({saga_type:String} = '' OR saga_type = {saga_type:String}) "
        "AND at >= toDateTime64({since:Float64}, 3, 'UTC') "
        "ORDER BY at DESC, saga_type, step LIMIT {limit:UInt32}",
        {"saga_type": saga_type or "", "since": _epoch_s(since), "limit": limit},
    ).rows
    return [_ack_from_row(r) for r in rows]


def acknowledge(
    store: Store,
    saga_type: str,
    step: str,
    *,
    action: str,
    by: str,
    until: datetime | None = None,
    note: str = "",
    now: datetime | None = None,
) -> Acknowledgement:
    """Record that ``by`` acknowledged, silenced (``until``) or cleared an alert group.

    The one write the dashboard makes; it needs a writable store. Every action is kept: the
    latest one is the group's handling, the others its history.

    Raises:
        QueryError: an unknown action, no name, or a silence without an end.
    """
    if action not in ACK_ACTIONS:
        raise QueryError(f"action must be one of {', '.join(ACK_ACTIONS)}, got {action!r}")
    who = (by or "").strip()
    if not who:
        raise QueryError("say who you are: an acknowledgement needs a name")
    if action == "silenced" and until is None:
        raise QueryError("a silence needs an end (until)")
    # Times as stored (milliseconds), so the acknowledgement returned is the one read back.
    ack = Acknowledgement(saga_type, step, action, who[:200],
                          _to_ms(as_utc(now) if now else datetime.now(UTC)),
                          _to_ms(as_utc(until)) if until is not None else None,
                          (note or "").strip()[:NOTE_MAX_CHARS])
    store.insert("alert_acks", [{
        "saga_type": ack.saga_type, "step": ack.step, "action": ack.action, "by": ack.by,
        "at": ack.at, "until": ack.until, "note": ack.note,
    }])
    return ack


# ---- alert groups ---------------------------------------------------------------------------

_GROUPS_SQL = (
    "SELECT saga_type, step, countIf(state = 'open') AS open, "
    "countIf(state = 'resolved') AS resolved, "
    "minIf(since, state = 'open') AS oldest_since, "
    "argMinIf(saga_id, since, state = 'open') AS oldest_saga, "
    "argMax(saga_id, updated_at) AS latest_saga, "
    "minIf(opened_at, state = 'open') AS oldest_opened, "
    "max(opened_at) AS newest_opened, "
    "maxIf(resolved_at, state = 'resolved') AS last_resolved, "
    "sumMapIf(map(waiting_for, toUInt64(1)), state = 'open') AS waiting_open, "
    "sumMap(map(waiting_for, toUInt64(1))) AS waiting_all "
    "FROM alerts FINAL "
    # Open alerts whenever they opened (they are the present); resolved ones in the range.
    "WHERE (state = 'open' OR updated_at >= toDateTime64({since:Float64}, 3, 'UTC')) "
    "AND ({saga_type:String} = '' OR saga_type = {saga_type:String}) "
    "GROUP BY saga_type, step"
)


def alert_groups(
    store: StoreReader,
    *,
    since: datetime | None = None,
    saga_type: str | None = None,
    now: datetime | None = None,
) -> list[AlertGroup]:
    """Alerts grouped by (saga type, step), each group with its state and handling.

    Open alerts count whenever they opened; resolved ones only when resolved at or after
    ``since``. A group is ``silenced`` while a silence set on it runs (``now``), and
    ``acknowledged`` when acknowledged after its oldest open alert opened: an
    acknowledgement from an earlier episode, all of whose alerts have resolved since, does
    not hide new ones. Groups come in the order of ``GROUP_STATES``, then most open first,
    resolved ones most recently resolved first.
    """
    moment = as_utc(now) if now else datetime.now(UTC)
    rows = store.query(
        _GROUPS_SQL, {"since": _epoch_s(since), "saga_type": saga_type or ""}
    ).dicts()
    acks = acknowledgements(store)
    groups = [_group(row, acks.get((row["saga_type"], row["step"])), moment) for row in rows]
    return sorted(groups, key=_group_order)


def _group(row: Mapping[str, Any], ack: Acknowledgement | None, now: datetime) -> AlertGroup:
    open_count = int(row["open"])
    handled = ""
    if ack is not None and ack.action == "silenced" and ack.active(now):
        handled = "silenced"
    elif (ack is not None and ack.action == "acknowledged" and open_count
          and ack.at >= as_utc(row["oldest_opened"])):
        handled = "acknowledged"
    state = (handled or "open") if open_count else "resolved"
    waiting: dict[str, int] = {}
    for text, n in (row["waiting_open"] if open_count else row["waiting_all"]).items():
        message = waited_message(str(text))
        waiting[message] = waiting.get(message, 0) + int(n)
    last_resolved = row["last_resolved"]
    return AlertGroup(
        saga_type=row["saga_type"],
        step=row["step"],
        state=state,
        open=open_count,
        resolved=int(row["resolved"]),
        waiting_for=tuple(sorted(waiting.items(),
                                 key=lambda item: (-item[1], item[0] == "", item[0]))),
        oldest_since=as_utc(row["oldest_since"]) if open_count else None,
        example_saga_id=row["oldest_saga"] if open_count else row["latest_saga"],
        newest_opened=as_utc(row["newest_opened"]),
        last_resolved=as_utc(last_resolved) if last_resolved is not None else None,
        handled_action=handled,
        handled_by=ack.by if handled and ack else "",
        handled_at=ack.at if handled and ack else None,
        silenced_until=ack.until if handled == "silenced" and ack else None,
        note=ack.note if handled and ack else "",
    )


def waited_message(waiting_for: str) -> str:
    """The message an alert waits for, without the command it replies to.

    ``PaymentReceived (reply to RetrievePayment)`` -> ``PaymentReceived``; texts that name no
    expected message (``reply to RetrievePayment``, ``next step after payment``) stay whole.
    """
    message, found, _ = waiting_for.partition(" (reply to ")
    return message if found else waiting_for


def _group_order(group: AlertGroup) -> tuple[Any, ...]:
    rank = GROUP_STATES.index(group.state)
    resolved_at = group.last_resolved.timestamp() if group.last_resolved else 0.0
    return (rank, -group.open, -resolved_at, group.saga_type, group.step)


def _epoch_s(moment: datetime | None) -> float:
    return (as_utc(moment) if moment else datetime(1970, 1, 1, tzinfo=UTC)).timestamp()


def _to_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
