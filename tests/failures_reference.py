"""The previous failures and compensation pairing, finished in Python: the reference the SQL
pairing of ``sagascope.queries.failures`` is checked against.

Kept as it was (commit e37b5e9), except that messages of the same Kafka and event time are
ordered by their position in Kafka, as the SQL pairing orders them (before, their order was
not defined), that the reason expression and the failing markers, which the pairing does
not compare, are the module's own, and the rules the truth harness (tests/truth) made right:
the failing message is its own cause unless it decided on an event that reports a failure;
a message without a step has the step of the command it answers; a step was done unless its
last event reports a failure by status, its own (not repeated) reason or (last) a word. Not
shipped: only the tests use it.
"""

from __future__ import annotations

import itertools
from typing import Any

from sagascope.queries.causes import (
    FAILING_MARKERS,
    FAILURE_WORDS,
    _reason_expr,
    reports_failure_sql,
)
from sagascope.queries.results import CompensationPair, FailureCount, SagaFilter
from sagascope.queries.state import StateQuery
from sagascope.store.timetext import as_utc


def failure_causes_sql(scope: str) -> str:
    """One row per failing saga in ``scope``: its cause and the message that marked the failure.

    The mark is the saga's first message saying it failed or started compensating (by
    ``ce_sagastatus``, a status rule or ``ce_compensates``), in arrival order. The cause is the
    event the mark answered (its causation, else the message heard before it); when the mark
    answered a command, the mark reported the failure itself. Tuples: (Kafka time, event
    time, offset, message id, causation id, kind, type, source, step or type, is mark);
    ``parent_id`` is the message id of what the cause answered. Needs ``failure_types``.
    """
    return f"""
SELECT saga_id, any(saga_type) AS saga_type,
       arraySort(x -> (x.1, x.2, x.3), groupArray(tuple(
           kafka_time, event_time, offset, message_id, causation_id, toString(kind),
           toString(type), toString(source), toString(step),
           saga_status IN ('failed', 'compensating', 'compensated') OR compensates != ''
               OR (saga_status = '' AND has({{failure_types:Array(String)}}, type)),
           compensates != '',
           {reports_failure_sql("saga_status", _reason_expr(), "type")}
               OR has({{failure_types:Array(String)}}, type)))) AS seq,
       arrayFirstIndex(x -> x.10, seq) AS mark_at,
       seq[mark_at] AS mark,
       arrayFirstIndex(x -> x.4 != '' AND x.4 = mark.5, seq) AS by_causation,
       if(by_causation > 0, by_causation, mark_at - 1) AS before,
       multiIf(before = 0 OR seq[before].6 = 'command', mark,
               mark.11 OR seq[before].12, seq[before], mark) AS cause,
       arrayFirstIndex(x -> x.4 != '' AND x.4 = cause.5, seq) AS cause_parent,
       if(cause_parent > 0, seq[cause_parent].4, '') AS parent_id,
       multiIf(cause.9 != '', cause.9,
               cause.6 != 'command' AND cause_parent > 0 AND seq[cause_parent].6 = 'command',
               if(seq[cause_parent].9 != '', seq[cause_parent].9, seq[cause_parent].7),
               cause.7) AS cause_step
FROM messages
WHERE {scope}
GROUP BY saga_id
HAVING mark_at > 0"""


def _reasons(q: StateQuery, saga_ids: list[str], message_ids: list[str]) -> dict[str, str]:
    """The reason each of these messages gives (read only for them: JSON is costly)."""
    ids = sorted({m for m in message_ids if m})
    if not ids:
        return {}
    rows = q.run(
        f"SELECT message_id, any({_reason_expr()}) FROM messages "
        "WHERE saga_id IN {sagas:Array(String)} AND message_id IN {ids:Array(String)} "
        "GROUP BY message_id",
        {"sagas": sorted(set(saga_ids)), "ids": ids},
    ).rows
    return {str(m): str(r) for m, r in rows}


def _cause_rows(q: StateQuery, scope: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(saga id, saga type, step, service, cause type, reason, cause event time) per saga.

    The reason is the cause's own; one it only copied from the command it answers (a payload
    passed along with an earlier attempt's error) is stale, and then the mark's counts when
    the mark is an event.
    """
    # Scalars, not the tuples: converting nested values costs more than the query.
    rows = q.run(
        f"SELECT saga_id, saga_type, cause.2, cause.4, cause.7, cause.8, cause_step, mark.4, "
        f"mark.6, parent_id FROM ({failure_causes_sql(scope)})",
        {**params, "failure_types": q.failure_types()},
    ).rows
    reasons = _reasons(q, [r[0] for r in rows], [m for r in rows for m in (r[3], r[7], r[9])])
    out = []
    for saga_id, saga_type, at, cause_id, type_, source, step, mark_id, mark_kind, parent in rows:
        reason = reasons.get(cause_id, "") if cause_id else ""
        if reason and parent and reasons.get(parent, "") == reason:
            reason = ""
        if not reason and mark_kind != "command" and mark_id != cause_id:
            reason = reasons.get(mark_id, "")
        out.append((saga_id, saga_type, step, source, type_, reason, at))
    return out


def failing_sagas(
    q: StateQuery, filters: SagaFilter | None, markers: tuple[str, ...] = FAILING_MARKERS
) -> dict[str, str]:
    """Saga id -> current status of the sagas ``filters`` match whose marker is in ``markers``.

    One pass over the saga state; the questions about these sagas then read their messages
    by primary key (``saga_id IN`` a list), not through the state again.
    """
    sql, params = q.sagas_sql(filters)
    params["markers"] = list(markers)
    rows = q.run(f"SELECT saga_id, status FROM ({sql}) WHERE has({{markers:Array(String)}}, marker)",
                 params).rows
    return {str(saga_id): str(status) for saga_id, status in rows}


def failures(q: StateQuery, filters: SagaFilter | None) -> list[FailureCount]:
    """Failing sagas by cause: saga type, step, service, message type and reason, and status.

    A saga counts once, at the message that failed it (see ``failure_causes_sql``); its undo
    commands are compensations, never counted here.
    """
    statuses = failing_sagas(q, filters)
    if not statuses:
        return []
    rows = _cause_rows(q, "saga_id IN {ids:Array(String)}", {"ids": sorted(statuses)})
    groups: dict[tuple[str, ...], list[Any]] = {}
    for saga_id, saga_type, step, service, error, reason, at in rows:
        key = (saga_type, step, service, error, reason, statuses[saga_id])
        group = groups.setdefault(key, [0, at, saga_id])
        group[0] += 1
        group[1] = max(group[1], at)
        group[2] = min(group[2], saga_id)
    out = [
        FailureCount(
            saga_type=k[0], step=k[1], service=k[2], error=k[3], count=n, sagas=n,
            last_seen=as_utc(last), example_saga_id=example, reason=k[4], status=k[5],
        )
        for k, (n, last, example) in groups.items()
    ]
    out.sort(key=lambda f: (-f.count, f.saga_type, f.step, f.service, f.error, f.reason,
                            f.status))
    return out


def failure_of(q: StateQuery, saga_id: str, status: str) -> FailureCount | None:
    """The cause of one failing saga (as ``failures`` counts it), or None if none is marked."""
    rows = _cause_rows(q, "saga_id = {saga_id:String}", {"saga_id": saga_id})
    if not rows:
        return None
    _, saga_type, step, service, error, reason, at = rows[0]
    return FailureCount(
        saga_type=saga_type, step=step, service=service, error=error, count=1, sagas=1,
        last_seen=as_utc(at), example_saga_id=saga_id, reason=reason, status=status,
    )


def _reports_failure(type_: str, saga_status: str, reason: str,
                     statuses: tuple[str, ...] = ("failed", "compensating")) -> bool:
    lowered = type_.lower()
    return (saga_status in statuses or bool(reason)
            or any(word in lowered for word in FAILURE_WORDS))


def compensations(q: StateQuery, filters: SagaFilter | None) -> list[CompensationPair]:
    """Each step a compensating saga had done, beside its undo and the undo's completion.

    A step needs an undo when some saga of its type has ever compensated it (learned from
    traffic) and the saga did it (its last event there does not report a failure). An undo is
    the message carrying ``ce_compensates``; it is complete when an event answers it (caused
    by it, or of the undo's step, or itself an event carrying ``ce_compensates``).
    """
    scope, params = q.message_scope(filters)
    comp = q.run(
        f"SELECT DISTINCT saga_type, compensates FROM messages "
        f"WHERE {scope} AND compensates != ''",
        params,
    ).rows
    if not comp:
        return []
    needs_undo: dict[str, set[str]] = {}
    for saga_type, step in comp:
        needs_undo.setdefault(saga_type, set()).add(step)
    undoing = set(failing_sagas(q, filters, ("compensating", "compensated")))
    undoing.update(str(r[0]) for r in q.run(
        f"SELECT DISTINCT saga_id FROM messages WHERE {scope} AND compensates != ''", params
    ).rows)
    if not undoing:
        return []
    # Flat rows (one per message), grouped here: nested arrays cost more to convert.
    result = q.run(
        f"""
SELECT saga_id, saga_type, kafka_time, event_time, message_id, causation_id, toString(kind),
       toString(type), toString(step), toString(compensates), toString(saga_status),
       {_reason_expr()}
FROM messages
WHERE saga_id IN {{ids:Array(String)}}
ORDER BY saga_id, kafka_time, event_time, topic, partition, offset""",
        {"ids": sorted(undoing)},
    )
    out: list[CompensationPair] = []
    for saga_id, group in itertools.groupby(result.rows, key=lambda r: r[0]):
        rows = list(group)
        saga_type = next((r[1] for r in rows if r[1]), "")
        messages = [tuple(r[2:]) for r in rows]
        out.extend(_pair_saga(saga_id, saga_type, messages, needs_undo.get(saga_type, set())))
    out.sort(key=lambda p: (p.done_at, p.saga_id, p.step))
    return out


def _pair_saga(
    saga_id: str, saga_type: str, seq: list[Any], steps: set[str]
) -> list[CompensationPair]:
    """The pairs of one saga from its messages ``(kafka, event, id, cause, kind, type, step,
    compensates, status, reason)`` in arrival order."""
    last_event: dict[str, tuple[Any, ...]] = {}
    undos: dict[str, list[tuple[Any, ...]]] = {}
    commands = {m[2]: m for m in seq if m[4] == "command" and m[2]}
    reasons = {m[2]: m[9] for m in seq if m[2]}

    def fresh(m: tuple[Any, ...]) -> str:  # a reason only repeated from its cause is stale
        return "" if m[9] == reasons.get(m[3], "") else str(m[9])

    for m in seq:
        if m[7]:
            undos.setdefault(m[7], []).append(m)
        elif m[4] != "command":
            names = {m[6], m[5]}
            answered = commands.get(m[3]) if not m[6] and m[3] else None
            if answered is not None:
                names |= {answered[6], answered[5]}
            for step in names & steps:
                last_event[step] = m
    out = []
    for step, done in last_event.items():
        if _reports_failure(done[5], done[8], fresh(done)):
            continue
        asked = undos.get(step, [])
        ids = {m[2] or f"#{i}" for i, m in enumerate(asked)}
        requests = [m for m in asked if m[4] == "command"]
        request_steps = {m[6] for m in requests if m[6]}
        request_ids = {m[2] for m in requests if m[2]}
        completion = next(
            (m for m in seq if m[4] != "command" and m not in requests and (
                m[7] == step or m[3] in request_ids or (m[6] and m[6] in request_steps))),
            None,
        )
        if completion is not None and _reports_failure(completion[5], completion[8],
                                                       fresh(completion), ("failed",)):
            state = "failed"
        elif len({m[2] for m in requests if m[2]}) > 1:
            state = "duplicated"
        elif not asked:
            state = "missing"
        elif completion is None:
            state = "pending"
        else:
            state = "completed"
        out.append(CompensationPair(
            saga_id=saga_id, saga_type=saga_type, step=step, done_at=as_utc(done[1]),
            undo_types=tuple(sorted({m[5] for m in asked} | (
                {completion[5]} if completion is not None else set()))),
            undo_at=as_utc(asked[0][1]) if asked else None,
            undo_count=len(request_ids) or len(ids),
            state=state,
            completed_at=as_utc(completion[1]) if completion is not None else None,
            completion_type=completion[5] if completion is not None else "",
        ))
    return out
