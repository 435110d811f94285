"""Alert history is a question too: the ``Alert`` type, reading the ``alerts`` table, flow links."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sagascope.queries.exceptions import QueryError
from sagascope.store import Store
from sagascope.store.timetext import as_utc

__all__ = [
    "ACK_ACTIONS",
    "ALERT_COLUMNS",
    "STATE_OPEN",
    "STATE_RESOLVED",
    "Acknowledgement",
    "Alert",
    "acknowledge",
    "acknowledgements",
    "alert_row",
    "flow_link",
    "list_alerts",
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
        """The alert as the webhook and Kafka sinks send it (times in RFC 3339)."""
        out = asdict(self)
        out["event"] = self.event
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat().replace("+00:00", "Z")
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
    store: Store,
    *,
    state: str | None = None,
    since: datetime | None = None,
    limit: int | None = 100,
    saga_type: str | None = None,
) -> list[Alert]:
    """Alerts in their latest state, open ones first, newest first.

    Args:
        state: ``open`` or ``resolved``; None for both.
        since: only alerts opened or changed at or after this time.
        limit: at most this many; None for all.
        saga_type: only alerts of this saga type; None for all.
    """
    if state not in (None, STATE_OPEN, STATE_RESOLVED):
        raise QueryError(f"alert state must be 'open' or 'resolved', got {state!r}")
    if limit is not None and limit < 1:
        raise QueryError(f"limit must be >= 1, got {limit}")
    params: dict[str, Any] = {
        "state": state or "",
        "saga_type": saga_type or "",
        "since": (as_utc(since) if since else datetime(1970, 1, 1, tzinfo=UTC)).timestamp(),
    }
    sql = (
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts FINAL "
        "WHERE ({state:String} = '' OR state = {state:String}) "
        "AND ({saga_type:String} = '' OR saga_type = {saga_type:String}) "
        "AND updated_at >= toDateTime64({since:Float64}, 3, 'UTC') "
        "ORDER BY state = 'open' DESC, opened_at DESC, alert_id"
    )
    if limit is not None:
        sql += " LIMIT {limit:UInt32}"
        params["limit"] = limit
    rows = store.query(sql, params).dicts()
    return [_alert_from_row(row) for row in rows]


def _alert_from_row(row: Mapping[str, Any]) -> Alert:
    resolved_at = row["resolved_at"]
    return Alert(
        alert_id=row["alert_id"],
        state=row["state"],
        saga_id=row["saga_id"],
        saga_type=row["saga_type"],
        step=row["step"],
        waiting_for=row["waiting_for"],
        since=as_utc(row["since"]),
        threshold_s=float(row["threshold_s"]),
        opened_at=as_utc(row["opened_at"]),
        link=row["link"],
        updated_at=as_utc(row["updated_at"]),
        resolved_at=as_utc(resolved_at) if resolved_at is not None else None,
        resolution=row["resolution"],
    )


#: What a person can do to an alert group.
ACK_ACTIONS = ("acknowledged", "silenced", "cleared")


@dataclass(frozen=True)
class Acknowledgement:
    """The latest action on an alert group (saga type, step): who, when, until when."""

    saga_type: str
    step: str
    action: str
    by: str
    at: datetime
    until: datetime | None = None

    def active(self, now: datetime) -> bool:
        """Acknowledged, or silenced and the silence not over yet."""
        if self.action == "acknowledged":
            return True
        return self.action == "silenced" and self.until is not None and self.until > now


def acknowledgements(store: Store) -> dict[tuple[str, str], Acknowledgement]:
    """The latest action per alert group, by (saga type, step)."""
    rows = store.query(
        "SELECT saga_type, step, action, by, at, until FROM alert_acks FINAL"
    ).rows
    return {
        (r[0], r[1]): Acknowledgement(r[0], r[1], r[2], r[3], as_utc(r[4]),
                                      as_utc(r[5]) if r[5] is not None else None)
        for r in rows
    }


def acknowledge(
    store: Store,
    saga_type: str,
    step: str,
    *,
    action: str,
    by: str,
    until: datetime | None = None,
    now: datetime | None = None,
) -> Acknowledgement:
    """Record that ``by`` acknowledged, silenced (``until``) or cleared an alert group.

    The one write the dashboard makes; it needs a writable store.

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
    ack = Acknowledgement(saga_type, step, action, who[:200],
                          as_utc(now) if now else datetime.now(UTC), until)
    store.insert("alert_acks", [{
        "saga_type": ack.saga_type, "step": ack.step, "action": ack.action, "by": ack.by,
        "at": ack.at, "until": ack.until,
    }])
    return ack
