"""The services' spans behind sagas: a flow's traces as a waterfall, and the slowest
handlings of a step (exemplars behind a slow p95), from the stored ``spans`` table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sagascope.queries.results import SagaFilter
from sagascope.queries.state import StateQuery
from sagascope.store.timetext import as_utc

#: Spans read per flow: a saga of a few hundred messages has twice as many spans.
MAX_TRACE_SPANS = 5000


@dataclass(frozen=True)
class TraceSpan:
    """One stored span: a service sending a message (PRODUCER) or handling one (CONSUMER)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service: str
    start: datetime
    end: datetime
    status_code: str
    status_message: str
    message_id: str

    @property
    def duration_s(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)

    @property
    def failed(self) -> bool:
        return self.status_code.upper() == "ERROR"


@dataclass(frozen=True)
class SlowHandling:
    """One handling of a step by a service: how long its message waited, how long it ran."""

    saga_id: str
    message_id: str
    trace_id: str
    kafka_time: datetime
    wait_s: float
    handle_s: float


def trace_spans(q: StateQuery, trace_ids: Sequence[str]) -> list[TraceSpan]:
    """Every span of these traces, by start time (at most :data:`MAX_TRACE_SPANS`)."""
    if not trace_ids:
        return []
    rows = q.run_point(
        "SELECT trace_id, span_id, parent_span_id, toString(name), toString(kind), "
        "toString(service), start_time, end_time, toString(status_code), status_message, "
        "message_id FROM spans WHERE trace_id IN {traces:Array(String)} AND span_id != '' "
        f"ORDER BY start_time, span_id LIMIT {MAX_TRACE_SPANS}",
        {"traces": list(trace_ids)},
    ).rows
    return [
        TraceSpan(trace_id=r[0], span_id=r[1], parent_span_id=r[2], name=r[3], kind=r[4],
                  service=r[5], start=as_utc(r[6]), end=as_utc(r[7]), status_code=r[8],
                  status_message=r[9], message_id=r[10])
        for r in rows
    ]


def slowest_handlings(
    q: StateQuery, filters: SagaFilter | None, saga_type: str, step: str, service: str,
    limit: int = 10,
) -> list[SlowHandling]:
    """The ``limit`` handlings of ``step`` by ``service`` that took longest (waiting plus
    handling), measured as :func:`~sagascope.queries.analytics.step_times` measures them."""
    scope, params = q.message_scope(filters)
    params.update(x_type=saga_type, x_step=step, x_service=service, x_limit=int(limit))
    rows = q.run(
        f"""
SELECT m.sent_saga, m.message_id, s.trace_id, m.sent_at,
       greatest(dateDiff('millisecond', m.sent_at, s.start_time), 0) / 1000.0 AS wait_s,
       dateDiff('microsecond', s.start_time, s.end_time) / 1e6 AS handle_s
FROM (SELECT message_id, trace_id, start_time, end_time FROM spans
      WHERE kind = 'CONSUMER' AND message_id != '' AND service = {{x_service:String}}) AS s
INNER JOIN (
    -- Aliases unlike the columns: the scope's WHERE reads saga_id and kafka_time themselves.
    SELECT message_id, any(saga_id) AS sent_saga, min(kafka_time) AS sent_at
    FROM messages
    WHERE {scope} AND saga_type = {{x_type:String}}
        AND if(step != '', toString(step), toString(type)) = {{x_step:String}}
        AND message_id IN (SELECT message_id FROM spans
                           WHERE kind = 'CONSUMER' AND service = {{x_service:String}})
    GROUP BY message_id
) AS m ON m.message_id = s.message_id
ORDER BY wait_s + handle_s DESC, m.sent_saga
LIMIT {{x_limit:UInt32}}""",
        params,
    ).rows
    return [
        SlowHandling(saga_id=r[0], message_id=r[1], trace_id=r[2], kafka_time=as_utc(r[3]),
                     wait_s=float(r[4]), handle_s=float(r[5]))
        for r in rows
    ]


def data_since(q: StateQuery) -> datetime | None:
    """The oldest event time stored (where "all time" begins); None for an empty store."""
    rows = q.run("SELECT min(event_time), count() FROM messages WHERE saga_id != ''").rows
    return as_utc(rows[0][0]) if rows and rows[0][1] else None
