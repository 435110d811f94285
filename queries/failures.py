"""Failures and compensations: each failing saga once, at its real cause; each undo beside the
event that completed it.

An undo (``CancelFlight``, ``RefundPayment``) is a compensation, never a failure; it is
complete when its completion event arrives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sagascope.queries.exceptions import QueryError
from sagascope.queries.results import (
    PAIR_STATES,
    CompensationPair,
    CompensationSummary,
    FailureCount,
    SagaFilter,
)
from sagascope.store.timetext import as_utc

if TYPE_CHECKING:  # state.py builds the cause filter from this module
    from sagascope.queries.state import StateQuery

#: Header and payload fields that carry the reason a message gives for a failure, in order.
REASON_FIELDS = ("error", "reason", "failureReason")

#: Words in a message type that say it reports a failure (lower case): the last resort, for
#: a message without a status marker and without a reason field.
FAILURE_WORDS = ("fail", "declin", "reject", "error", "unavailable", "outofstock", "noseats",
                 "insufficient", "refused", "denied", "expired", "timedout")


def _reason_expr() -> str:
    """The reason a message gives for itself: a reason header or JSON field (REASON_FIELDS)."""
    parts = [f"headers['{name}'] != '', headers['{name}']" for name in REASON_FIELDS]
    parts += [f"JSONExtractString(payload, '{name}') != '', JSONExtractString(payload, '{name}')"
              for name in REASON_FIELDS]
    return f"multiIf({', '.join(parts)}, parse_error)"


def reports_failure_sql(
    status: str, reason: str, type_: str, statuses: tuple[str, ...] = ("failed", "compensating")
) -> str:
    """SQL: a message reports a failure, by its status marker (one of ``statuses``), else a
    reason field, else (the last resort) a word in its type. Arguments are SQL expressions of
    the message's ``saga_status``, its reason (``_reason_expr``) and its type."""
    words = ", ".join(f"'{w}'" for w in FAILURE_WORDS)
    marked = ", ".join(f"'{v}'" for v in statuses)
    return (f"({status} IN ({marked}) OR {reason} != '' "
            f"OR multiSearchAny(lowerUTF8({type_}), [{words}]))")


#: Statuses of a saga that failed (the saga state's ``marker``).
FAILING_MARKERS = ("failed", "compensating", "compensated")


def failure_causes_sql(scope: str) -> str:
    """One row per failing saga in ``scope``: its cause and the message that marked the failure.

    The mark is the saga's first message saying it failed or started compensating (by
    ``ce_sagastatus``, a status rule or ``ce_compensates``), in arrival order. The cause is the
    message that reported the failure: the mark itself, unless the mark is a decision on an
    earlier event (its causation, else the message heard before it) that reports a failure
    (``reports_failure_sql``), or an undo (then what it answered). A mark answering a command
    reported the failure itself; so does a choreographed participant's failure event
    answering another service's successful event. Tuples: (Kafka time, event time, offset,
    message id, causation id, kind, type, source, step, is mark, reason, is undo, reports a
    failure); ``parent`` is the message that the cause answered (index 0 without one). Needs
    ``failure_types``.
    """
    # One layer per derived value: an alias used twice in one SELECT is expanded at each use
    # (the whole sorted array again), which cost more than the data (0.2 s on 1,000 rows).
    return f"""
SELECT saga_id, saga_type, seq, mark_at, mark, cause, parent_at, seq[parent_at] AS parent
FROM (
    SELECT saga_id, saga_type, seq, mark_at, mark, cause,
           arrayFirstIndex(x -> x.4 != '' AND x.4 = cause.5, seq) AS parent_at
    FROM (
        SELECT saga_id, saga_type, seq, mark_at, mark,
               multiIf(before = 0 OR seq[before].6 = 'command', mark,
                       mark.12 OR seq[before].13, seq[before], mark) AS cause
        FROM (
            SELECT saga_id, saga_type, seq, mark_at, mark,
                   arrayFirstIndex(x -> x.4 != '' AND x.4 = mark.5, seq) AS by_causation,
                   if(by_causation > 0, by_causation, mark_at - 1) AS before
            FROM (
                SELECT saga_id, saga_type, seq, mark_at, seq[mark_at] AS mark
                FROM (
                    SELECT saga_id, any(saga_type) AS saga_type,
                           arraySort(x -> (x.1, x.2, x.3), groupArray(tuple(
                               kafka_time, event_time, offset, message_id, causation_id,
                               toString(kind), toString(type), toString(source),
                               toString(step),
                               saga_status IN ('failed', 'compensating', 'compensated')
                                   OR compensates != ''
                                   OR (saga_status = ''
                                       AND has({{failure_types:Array(String)}}, type)),
                               {_reason_expr()}, compensates != '',
                               {reports_failure_sql("saga_status", _reason_expr(), "type")}
                                   OR has({{failure_types:Array(String)}}, type)))) AS seq,
                           arrayFirstIndex(x -> x.10, seq) AS mark_at
                    FROM messages
                    WHERE {scope}
                    GROUP BY saga_id
                    HAVING mark_at > 0
                )
            )
        )
    )
)"""


def cause_rows_sql(scope: str) -> str:
    """Per failing saga in ``scope``: ``saga_id, saga_type, step, service, error, reason, at``.

    The step is the cause's own, else that of the command it answers, else its type (a
    participant that sets no step). The reason is the cause's own; one it only copied from
    the command it answers (a payload passed along with an earlier attempt's error) is stale,
    and then the mark's counts when the mark is an event. A message without an id gives no
    reason (nothing names it).
    """
    return f"""
SELECT saga_id, saga_type, step, service, error,
       if(fresh_reason = '' AND mark_kind != 'command' AND mark_id != cause_id
          AND mark_id != '', mark_reason, fresh_reason) AS reason,
       at
FROM (
    SELECT *, if(own_reason != '' AND parent_reason = own_reason, '', own_reason)
                  AS fresh_reason
    FROM (
        SELECT saga_id, saga_type,
               multiIf(cause.9 != '', cause.9,
                       cause.6 != 'command' AND parent_at > 0 AND parent.6 = 'command',
                       if(parent.9 != '', parent.9, parent.7), cause.7) AS step,
               cause.8 AS service, cause.7 AS error,
               cause.2 AS at, cause.4 AS cause_id, if(cause.4 != '', cause.11, '') AS own_reason,
               if(parent_at > 0, parent.11, '') AS parent_reason, mark.4 AS mark_id,
               mark.6 AS mark_kind, mark.11 AS mark_reason
        FROM ({failure_causes_sql(scope)})
    )
)"""


def cause_filter_sql() -> str:
    """A condition on saga ids: the failing sagas whose cause is ``{f_cause_*}`` (saga type,
    step, service, message type, reason), as ``failures`` counts them. Needs
    ``failure_types``; only sagas holding a message of the cause's type are read."""
    scope = "saga_id IN (SELECT saga_id FROM messages WHERE type = {f_cause_error:String})"
    return (
        f"saga_id IN (SELECT saga_id FROM ({cause_rows_sql(scope)}) "
        "WHERE saga_type = {f_cause_type:String} AND step = {f_cause_step:String} "
        "AND service = {f_cause_service:String} AND error = {f_cause_error:String} "
        "AND reason = {f_cause_reason:String})"
    )


def _failing_sql(sagas_sql: str) -> str:
    """The sagas of ``sagas_sql`` (the saga state) whose marker is in ``markers``."""
    return f"SELECT saga_id, status FROM ({sagas_sql}) WHERE has({{markers:Array(String)}}, marker)"


def failing_sagas(
    q: StateQuery, filters: SagaFilter | None, markers: tuple[str, ...] = FAILING_MARKERS
) -> dict[str, str]:
    """Saga id -> current status of the sagas ``filters`` match whose marker is in ``markers``."""
    sql, params = q.sagas_sql(filters)
    params["markers"] = list(markers)
    rows = q.run(_failing_sql(sql), params).rows
    return {str(saga_id): str(status) for saga_id, status in rows}


def failures(q: StateQuery, filters: SagaFilter | None) -> list[FailureCount]:
    """Failing sagas by cause: saga type, step, service, message type and reason, and status.

    A saga counts once, at the message that failed it (see ``failure_causes_sql``); its undo
    commands are compensations, never counted here. One query: the failing sagas are read
    from the saga state and their messages by primary key (``saga_id IN`` a subquery).
    """
    sql, params = q.sagas_sql(filters)
    failing = _failing_sql(sql)
    rows = q.run(
        f"""
SELECT c.saga_type, c.step, c.service, c.error, c.reason, f.status, count(), max(c.at),
       min(c.saga_id)
FROM ({cause_rows_sql(f"saga_id IN (SELECT saga_id FROM ({failing}))")}) AS c
INNER JOIN ({failing}) AS f ON f.saga_id = c.saga_id
GROUP BY c.saga_type, c.step, c.service, c.error, c.reason, f.status""",
        {**params, "markers": list(FAILING_MARKERS), "failure_types": q.failure_types()},
    ).rows
    out = [
        FailureCount(
            saga_type=saga_type, step=step, service=service, error=error, count=int(n),
            sagas=int(n), last_seen=as_utc(last), example_saga_id=example, reason=reason,
            status=status,
        )
        for saga_type, step, service, error, reason, status, n, last, example in rows
    ]
    out.sort(key=lambda f: (-f.count, f.saga_type, f.step, f.service, f.error, f.reason,
                            f.status))
    return out


def failure_of(q: StateQuery, saga_id: str, status: str) -> FailureCount | None:
    """The cause of one failing saga (as ``failures`` counts it), or None if none is marked."""
    rows = q.run(
        f"SELECT saga_type, step, service, error, reason, at FROM "
        f"({cause_rows_sql('saga_id = {saga_id:String}')})",
        {"saga_id": saga_id, "failure_types": q.failure_types()},
    ).rows
    if not rows:
        return None
    saga_type, step, service, error, reason, at = rows[0]
    return FailureCount(
        saga_type=saga_type, step=step, service=service, error=error, count=1, sagas=1,
        last_seen=as_utc(at), example_saga_id=saga_id, reason=reason, status=status,
    )


def _fresh_reason_sql(message: str) -> str:
    """SQL: the reason of ``message`` (``pairs_sql``'s layout), unless it only repeats the one
    of the message it answers (a payload passed along with an earlier attempt's error)."""
    parent = f"arrayFirst(y -> y.3 != '' AND y.3 = {message}.4, seq).12"
    return f"if({message}.12 != {parent}, {message}.12, '')"


def _done_failed_sql(message: str) -> str:
    """SQL: the message tuple ``message`` (``pairs_sql``'s layout) reports its step failed."""
    return reports_failure_sql(f"{message}.9", _fresh_reason_sql(message), f"{message}.6")


def _undo_failed_sql(message: str) -> str:
    """SQL: the undo's completion ``message`` reports the undo failed."""
    return reports_failure_sql(f"{message}.9", _fresh_reason_sql(message), f"{message}.6",
                               ("failed",))


def pairs_sql(undoing: str, scope: str) -> str:
    """One row per step a saga in ``undoing`` (a subquery of saga ids) did and had to undo.

    A step needs an undo when some saga of its type in ``scope`` compensated it (``steps``).
    Per saga, its messages in arrival order are tuples (Kafka time, event time, id, causation
    id, kind, type, step, compensates, saga status, saga type, position, reason). ``done`` is
    the saga's last event of the step: of that step, or of that type, or (an event naming no
    step) answering the command of that step or type, as the README's instrumentation example
    sends them; a step whose last event reports a failure (``reports_failure_sql``; a reason
    it only repeats from the message it answers is stale) was not done, so there is nothing
    to undo. ``asked`` are the messages undoing it; the completion
    is the first event that answers an undo command (caused by it, or of its step) or itself
    carries ``ce_compensates`` for the step.
    """
    return f"""
SELECT saga_id, saga_type, step, done.2 AS done_at,
       arraySort(arrayDistinct(arrayConcat(arrayMap(x -> x.6, asked),
                                           if(completion_at > 0, [completion.6], []))))
           AS undo_types,
       length(asked) > 0 AS was_asked, asked[1].2 AS undo_at,
       if(length(request_ids) > 0, length(request_ids),
          length(arrayDistinct(arrayFilter(i -> i != '', arrayMap(x -> x.3, asked))))
          + countEqual(arrayMap(x -> x.3, asked), '')) AS undo_count,
       multiIf(completion_at > 0 AND {_undo_failed_sql("completion")}, 'failed',
               length(request_ids) > 1, 'duplicated',
               length(asked) = 0, 'missing',
               completion_at = 0, 'pending', 'completed') AS state,
       completion_at > 0 AS completed, completion.2 AS completed_at,
       if(completion_at > 0, completion.6, '') AS completion_type
FROM (
    SELECT saga_id, saga_type, step, seq, done, asked, request_ids,
           arrayFirstIndex(x -> x.5 != 'command' AND (x.8 = step OR has(request_ids, x.4)
                                OR (x.7 != '' AND has(request_steps, x.7))), seq)
               AS completion_at,
           seq[completion_at] AS completion
    FROM (
        SELECT saga_id, saga_type, step, seq,
               arrayLastIndex(x -> x.8 = '' AND x.5 != 'command' AND (
                   x.7 = step OR x.6 = step OR (x.7 = '' AND x.4 != '' AND arrayExists(
                       y -> y.3 = x.4 AND y.5 = 'command' AND (y.7 = step OR y.6 = step), seq))),
                   seq) AS done_at,
               seq[done_at] AS done,
               arrayFilter(x -> x.8 = step, seq) AS asked,
               arrayFilter(x -> x.5 = 'command', asked) AS requests,
               arrayDistinct(arrayFilter(i -> i != '', arrayMap(x -> x.3, requests)))
                   AS request_ids,
               arrayDistinct(arrayFilter(s -> s != '', arrayMap(x -> x.7, requests)))
                   AS request_steps
        FROM (
            SELECT s.saga_id AS saga_id, s.saga_type AS saga_type, s.seq AS seq,
                   needs.steps AS steps
            FROM (
                SELECT saga_id, arrayFirst(t -> t != '', arrayMap(x -> x.10, seq)) AS saga_type,
                       seq
                FROM (
                    SELECT saga_id, arraySort(x -> (x.1, x.2, x.11), groupArray(tuple(
                               kafka_time, event_time, message_id, causation_id,
                               toString(kind), toString(type), toString(step),
                               toString(compensates), toString(saga_status),
                               toString(saga_type), tuple(topic, partition, offset),
                               {_reason_expr()}))) AS seq
                    FROM messages
                    WHERE saga_id IN ({undoing})
                    GROUP BY saga_id
                )
            ) AS s
            INNER JOIN (
                SELECT saga_type, groupUniqArray(toString(compensates)) AS steps
                FROM messages WHERE {scope} AND compensates != '' GROUP BY saga_type
            ) AS needs ON needs.saga_type = s.saga_type
        )
        ARRAY JOIN steps AS step
    )
    WHERE done_at > 0 AND NOT {_done_failed_sql("done")}
)"""


#: The columns of a ``CompensationPair``, in ``pairs_sql``'s names and its field order.
_PAIR_COLUMNS = ("saga_id, saga_type, step, done_at, undo_types, was_asked, undo_at, undo_count, "
                 "state, completed, completed_at, completion_type")


def _pair(row: tuple[Any, ...]) -> CompensationPair:
    (saga_id, saga_type, step, done_at, undo_types, was_asked, undo_at, undo_count, state,
     completed, completed_at, completion_type) = row
    return CompensationPair(
        saga_id=saga_id, saga_type=saga_type, step=step, done_at=as_utc(done_at),
        undo_types=tuple(undo_types), undo_at=as_utc(undo_at) if was_asked else None,
        undo_count=int(undo_count), state=state,
        completed_at=as_utc(completed_at) if completed else None,
        completion_type=completion_type,
    )


def _pairs_query(q: StateQuery, filters: SagaFilter | None) -> tuple[str, dict[str, Any]]:
    """``pairs_sql`` over the sagas marked compensating or compensated, and any with an undo."""
    scope, params = q.message_scope(filters)
    sql, state_params = q.sagas_sql(filters)
    undoing = (f"SELECT saga_id FROM ({_failing_sql(sql)}) UNION ALL "
               f"SELECT saga_id FROM messages WHERE {scope} AND compensates != ''")
    return pairs_sql(undoing, scope), {**params, **state_params,
                                       "markers": ["compensating", "compensated"]}


def compensations(q: StateQuery, filters: SagaFilter | None) -> list[CompensationPair]:
    """Each step a compensating saga had done, beside its undo and the undo's completion.

    A step needs an undo when some saga of its type has ever compensated it (learned from
    traffic) and the saga did it (its last event there does not report a failure). An undo is
    the message carrying ``ce_compensates``; it is complete when an event answers it (caused
    by it, or of the undo's step, or itself an event carrying ``ce_compensates``). Paired in
    one query (see ``pairs_sql``).
    """
    sql, params = _pairs_query(q, filters)
    out = [_pair(row) for row in q.run(f"SELECT {_PAIR_COLUMNS} FROM ({sql})", params).rows]
    out.sort(key=lambda p: (p.done_at, p.saga_id, p.step))
    return out


def compensation_summary(
    q: StateQuery, filters: SagaFilter | None, limit: int
) -> CompensationSummary:
    """The pairs per state and the first ``limit`` of them, problems first, latest first.

    What a page shows of ``compensations``: ClickHouse counts and orders every pair, and only
    the ``limit`` pairs per state that can be shown leave it.
    """
    if limit < 1:
        raise QueryError(f"limit must be at least 1, got {limit}")
    sql, params = _pairs_query(q, filters)
    rows = q.run(
        f"""
SELECT state, n, p.1, p.2, p.3, p.4, p.5, p.6, p.7, p.8, p.9, p.10, p.11, p.12
FROM (
    SELECT state, count() AS n,
           arraySlice(arraySort(x -> (-toUnixTimestamp64Micro(x.4), x.1, x.3),
                                groupArray(tuple({_PAIR_COLUMNS}))), 1, {{limit:UInt32}}) AS top
    FROM ({sql})
    GROUP BY state
)
ARRAY JOIN top AS p""",
        {**params, "limit": int(limit)},
    ).rows
    counts = {str(r[0]): int(r[1]) for r in rows}
    rank = {state: i for i, state in enumerate(PAIR_STATES)}
    pairs = [_pair(r[2:]) for r in rows]
    pairs.sort(key=lambda p: (rank.get(p.state, len(rank)), -p.done_at.timestamp(), p.saga_id,
                              p.step))
    return CompensationSummary(counts=counts, pairs=pairs[:limit], limit=limit)
