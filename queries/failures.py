"""Failures and compensations: each failing saga once, at its real cause; each undo beside the
event that completed it.

An undo (``CancelFlight``, ``RefundPayment``) is a compensation, never a failure; it is
complete when its completion event arrives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sagascope.queries.causes import (
    FAILING_MARKERS,
    _reason_expr,
    cause_rows_sql,
    reports_failure_sql,
)
from sagascope.queries.exceptions import QueryError
from sagascope.queries.results import (
    PAIR_STATES,
    CompensationPair,
    CompensationSummary,
    FailureCount,
    SagaFilter,
)
from sagascope.store.timetext import as_utc

if TYPE_CHECKING:
    from sagascope.queries.state import StateQuery

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
