"""Who caused a saga's failure, in SQL: what a message says of a failure (status marker,
reason field, words in its type as the last resort), the message that caused each failing saga's
failure, and a condition selecting the sagas that failed with one cause.

Both the saga list's cause filter (:mod:`sagascope.queries.state`) and the failure counts
(:mod:`sagascope.queries.failures`) build on these, so a cause opens exactly the sagas it counts.
"""

from __future__ import annotations

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
