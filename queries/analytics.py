"""Analytics over many sagas: cycle times, throughput, transitions, process maps, variants,
where time goes. Failures and compensations are in ``failures``.

Each function is one question answered by ClickHouse; Python only shapes rows into results.
Per-saga sequences are ordered by event time, then arrival (Kafka time, offset), with
redelivered copies (same message id) counted once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sagascope.queries.exceptions import QueryError
from sagascope.queries.results import (
    FINISHED_STATUSES,
    CycleTimeStats,
    ProcessEdge,
    ProcessMap,
    ProcessNode,
    SagaFilter,
    StepTime,
    ThroughputPoint,
    Transition,
    Variant,
)
from sagascope.queries.state import StateQuery
from sagascope.store.schema import activity_hash
from sagascope.store.timetext import as_utc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Pseudo-activities marking where sagas start and end, in the one pass over the pairs.
_START, _END = "\x02start", "\x03end"

_ACTIVITY = {
    "type": "x.5",
    "step": "if(x.6 != 0, x.6, x.5)",
}
# Start and end markers among the activity hashes (never a hash: those are < 4294967291).
_START_ID, _END_ID = 4294967295, 4294967294

#: Durations (not counts) of process maps and transitions come from a sample of about this
#: many sagas (every saga below it), picked by a hash of the saga id.
DURATION_SAMPLE_SAGAS = 100_000


def _activity(by: str) -> str:
    try:
        return _ACTIVITY[by]
    except KeyError:
        raise QueryError(f"by must be one of {', '.join(_ACTIVITY)}, got {by!r}") from None


def _sequences_sql(scope: str, by: str) -> str:
    """One row per saga: ``acts`` (activities) and ``ts`` (event times in ms), in order.

    Read from ``saga_state.path``. Ordered by arrival (Kafka time, then event time and
    offset): a service whose clock runs behind must not put its reply before the command it
    answers. A message's time is never before the one heard before it (a skewed clock gives
    a zero wait, not a negative one). Copies of a message (same message id) counted once.
    ``scope`` is a condition on saga_state.
    """
    return f"""
SELECT saga_id, saga_type,
       arraySort(x -> (x.2, x.1, x.3), path) AS raw,
       arrayFilter((x, k) -> k = 1, raw, arrayEnumerateUniq(arrayMap(y -> y.4, raw))) AS seq,
       arrayMap(x -> {_activity(by)}, seq) AS acts,
       arrayMap(x -> x.1, seq) AS event_ms,
       arrayMap(i -> arrayMax(arraySlice(event_ms, 1, i)), arrayEnumerate(event_ms)) AS ts,
       (ts[-1] - ts[1]) / 1000.0 AS cycle_s
FROM saga_state FINAL
WHERE {scope}"""


def _variant_counts_sql(scope: str, by: str) -> str:
    """(saga_type, acts, n): how many sagas of each type followed each path."""
    return f"""
SELECT saga_type, acts, count() AS n
FROM ({_sequences_sql(scope, by)})
GROUP BY saga_type, acts"""


# Every path's pairs (a -> b, ms between), from a start marker to an end marker.
_PAIRS = (
    "ARRAY JOIN arrayPushFront(acts, toUInt32({start:UInt32})) AS a, "
    "arrayPushBack(acts, toUInt32({end:UInt32})) AS b, "
    "arrayPushBack(arrayDifference(ts), 0) AS ms"
)


def _sample_modulus(q: StateQuery) -> int:
    sagas = int(q.run("SELECT count() FROM saga_state").scalar() or 0)
    return max(1, sagas // DURATION_SAMPLE_SAGAS)


def activity_names(q: StateQuery) -> dict[int, str]:
    """Activity hash -> message type or step name, for every name stored."""
    rows = q.run(
        f"""
SELECT toString(name) AS activity, {activity_hash("activity")} FROM (
    SELECT DISTINCT type AS name FROM messages
    UNION DISTINCT
    SELECT DISTINCT step AS name FROM messages WHERE step != ''
)"""
    ).rows
    names = {int(h): name for name, h in rows}
    names[_START_ID], names[_END_ID] = _START, _END
    return names


def _ids(params: dict[str, Any]) -> dict[str, Any]:
    return dict(params, start=_START_ID, end=_END_ID)


def _pair_counts(
    q: StateQuery, scope: str, params: dict[str, Any], by: str, names: dict[int, str]
) -> list[Any]:
    """Exact (saga_type, a, b, times, sagas) over all sagas, from the variants: how often
    ``b`` directly followed ``a``, and in how many sagas."""
    rows = q.run(
        f"""
SELECT saga_type, p.1 AS a, p.2 AS b, sum(n * countEqual(pairs, p)) AS times, sum(n) AS sagas
FROM (
    SELECT saga_type, n,
           arrayZip(arrayPushFront(acts, toUInt32({{start:UInt32}})),
                    arrayPushBack(acts, toUInt32({{end:UInt32}}))) AS pairs
    FROM ({_variant_counts_sql(scope, by)})
)
ARRAY JOIN arrayDistinct(pairs) AS p
GROUP BY saga_type, a, b""",
        _ids(params),
    ).rows
    return [(t, names.get(int(a), f"#{a}"), names.get(int(b), f"#{b}"), n, k)
            for t, a, b, n, k in rows]


def _sagas_through(q: StateQuery, scope: str, params: dict[str, Any], by: str,
                   names: dict[int, str]) -> dict[str, int]:
    """Activity -> how many sagas passed through it (at least once)."""
    rows = q.run(
        f"""
SELECT a, sum(n) FROM ({_variant_counts_sql(scope, by)})
ARRAY JOIN arrayDistinct(acts) AS a
GROUP BY a""",
        params,
    ).rows
    return {names.get(int(a), f"#{a}"): int(n) for a, n in rows}


def _pair_durations(
    q: StateQuery,
    scope: str,
    params: dict[str, Any],
    by: str,
    names: dict[int, str],
    levels: str,
    per_type: bool,
) -> dict[tuple[str, ...], tuple[list[float], float]]:
    """(saga_type?, a, b) -> (quantiles at ``levels``, max) of seconds, over the sample."""
    sample = dict(_ids(params), sample=_sample_modulus(q))
    keys = "saga_type, a, b" if per_type else "a, b"
    rows = q.run(
        f"""
SELECT {keys}, quantiles({levels})(ms / 1000.0) AS q, max(ms) / 1000.0 AS max_s
FROM ({_sequences_sql(scope + " AND cityHash64(saga_id) % {sample:UInt64} = 0", by)})
{_PAIRS}
WHERE a != {{start:UInt32}} AND b != {{end:UInt32}}
GROUP BY {keys}""",
        sample,
    ).rows
    out: dict[tuple[str, ...], tuple[list[float], float]] = {}
    for r in rows:
        *key, quantiles, max_s = r
        named = tuple(
            k if i == 0 and per_type else names.get(int(k), f"#{k}") for i, k in enumerate(key)
        )
        out[named] = ([float(v) for v in quantiles], float(max_s))
    return out


def _quantile_cols(expr: str) -> str:
    return f"quantilesExactInclusive(0.5, 0.9, 0.95, 0.99)({expr}) AS q"


def _bucket(column: str) -> str:
    return (
        f"toDateTime64(toStartOfInterval({column}, toIntervalSecond({{bucket:UInt32}})), 3, 'UTC')"
    )


def _bucket_param(bucket_s: float) -> int:
    bucket = int(bucket_s)
    if bucket < 1:
        raise QueryError(f"bucket_s must be at least 1 second, got {bucket_s}")
    return bucket


def _cycle_stats(row: dict[str, Any], saga_type: str) -> CycleTimeStats:
    q = row["q"] or [0.0, 0.0, 0.0, 0.0]
    return CycleTimeStats(
        saga_type=saga_type,
        count=int(row["n"]),
        p50_s=float(q[0]),
        p90_s=float(q[1]),
        p95_s=float(q[2]),
        p99_s=float(q[3]),
        mean_s=float(row["mean_s"] or 0.0),
        max_s=float(row["max_s"] or 0.0),
        bucket=as_utc(row["bucket"]) if row.get("bucket") is not None else None,
    )


def _finished(filters: SagaFilter | None) -> str:
    if filters is not None and filters.status:
        return ""
    return " AND status IN ({})".format(", ".join(f"'{s}'" for s in FINISHED_STATUSES))


def usual_next(q: StateQuery, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The most common next message type after each (saga type, message type), from history."""
    if not pairs:
        return {}
    params: dict[str, Any] = {"types": sorted({t for t, _ in pairs})}
    best: dict[tuple[str, str], tuple[int, str]] = {}
    for saga_type, a, b, n, _sagas in _pair_counts(
        q, "saga_type IN {types:Array(String)}", params, "type", activity_names(q)
    ):
        key = (saga_type, a)
        if key in pairs and b not in (a, _END) and (int(n), b) > best.get(key, (0, "")):
            best[key] = (int(n), b)
    return {key: b for key, (_, b) in best.items()}


def cycle_times(q: StateQuery, filters: SagaFilter | None) -> list[CycleTimeStats]:
    """Per saga type, and overall as ``saga_type='*'`` (first), of finished sagas."""
    sql, params = q.sagas_sql(filters)
    rows = q.run(
        f"""
SELECT saga_type, grouping(saga_type) AS total, count() AS n, {_quantile_cols("duration_s")},
       avg(duration_s) AS mean_s, max(duration_s) AS max_s
FROM ({sql}) WHERE 1 {_finished(filters)}
GROUP BY saga_type WITH ROLLUP
ORDER BY total DESC, saga_type""",
        params,
    ).dicts()
    return [
        _cycle_stats(r, "*" if r["total"] else r["saga_type"]) for r in rows if r["n"]
    ]


def cycle_times_over_time(
    q: StateQuery, filters: SagaFilter | None, bucket_s: float
) -> list[CycleTimeStats]:
    """Per (bucket of the time sagas finished, saga type)."""
    sql, params = q.sagas_sql(filters)
    params["bucket"] = _bucket_param(bucket_s)
    rows = q.run(
        f"""
SELECT {_bucket('ended')} AS bucket, saga_type,
       count() AS n, {_quantile_cols("duration_s")}, avg(duration_s) AS mean_s,
       max(duration_s) AS max_s
FROM ({sql}) WHERE 1 {_finished(filters)}
GROUP BY bucket, saga_type ORDER BY bucket, saga_type""",
        params,
    ).dicts()
    return [_cycle_stats(r, r["saga_type"]) for r in rows]


def throughput(q: StateQuery, filters: SagaFilter | None, bucket_s: float) -> list[ThroughputPoint]:
    """Messages, sagas started and sagas finished (at their end) per bucket of event time,
    every bucket up to the watermark's (zeros included; that last one ``partial``)."""
    bucket = _bucket_param(bucket_s)
    scope, params = q.message_scope(filters)
    params["bucket"] = bucket
    messages = q.run(
        f"""
SELECT {_bucket('event_time')} AS bucket,
       count() AS n
FROM messages WHERE {scope} GROUP BY bucket""",
        params,
    ).rows
    sql, sparams = q.sagas_sql(filters)
    sparams["bucket"] = bucket
    sagas = q.run(
        f"""
SELECT bucket, sum(is_start) AS n_started, sum(is_end) AS n_finished FROM (
    SELECT {_bucket('started')} AS bucket,
           1 AS is_start, 0 AS is_end FROM ({sql})
    UNION ALL
    SELECT {_bucket('ended')} AS bucket,
           0, 1 FROM ({sql}) WHERE 1 {_finished(None)}
) GROUP BY bucket""",
        sparams,
    ).rows
    points: dict[datetime, list[int]] = {}
    for when, n in messages:
        points.setdefault(as_utc(when), [0, 0, 0])[0] = int(n)
    for when, started, finished in sagas:
        entry = points.setdefault(as_utc(when), [0, 0, 0])
        entry[1], entry[2] = int(started), int(finished)
    if not points:
        return []
    return _every_bucket(points, bucket, q.watermark(), filters)


def _every_bucket(
    points: dict[datetime, list[int]], bucket_s: int, watermark: datetime,
    filters: SagaFilter | None,
) -> list[ThroughputPoint]:
    """Every bucket from the first (or the range's start) to the watermark's, empty ones as
    zeros (a chart must not carry a value over a quiet minute); a bucket not over by the
    watermark is ``partial``."""
    width = timedelta(seconds=bucket_s)

    def floor(moment: datetime) -> datetime:
        return _EPOCH + (moment - _EPOCH) // width * width

    first, last = min(points), max(points)
    f = filters or SagaFilter()
    if f.time_from is not None:
        first = min(first, floor(as_utc(f.time_from)))
    end = watermark if f.time_to is None else min(watermark, as_utc(f.time_to))
    last = max(last, floor(end))
    out = []
    at = first
    while at <= last:
        messages, started, finished = points.get(at, [0, 0, 0])
        out.append(ThroughputPoint(at, messages, started, finished,
                                   partial=at + width > watermark))
        at += width
    return out


def transitions(q: StateQuery, filters: SagaFilter | None, by: str = "step") -> list[Transition]:
    """Time from each step to the next message of the saga, per (saga type, from, to).

    Counts are exact; percentiles and max come from a sample of about
    ``DURATION_SAMPLE_SAGAS`` sagas (all of them below that), through ClickHouse's
    ``quantiles`` (exact up to 8192 values per pair).
    """
    scope, params = q.message_scope(filters)
    names = activity_names(q)
    counts = _pair_counts(q, scope, params, by, names)
    durations = _pair_durations(
        q, scope, params, by, names, "0.5, 0.9, 0.95, 0.99", per_type=True
    )
    out = []
    for saga_type, a, b, n, _sagas in counts:
        if a == _START or b == _END:
            continue
        quantiles, max_s = durations.get((saga_type, a, b), ([0.0] * 4, 0.0))
        out.append(
            Transition(
                saga_type=saga_type, from_step=a, to_step=b, count=int(n),
                p50_s=quantiles[0], p90_s=quantiles[1], p95_s=quantiles[2], p99_s=quantiles[3],
                max_s=max_s,
            )
        )
    out.sort(key=lambda t: (t.saga_type, -t.count, t.from_step, t.to_step))
    return out


def process_map(q: StateQuery, filters: SagaFilter | None, by: str = "type") -> ProcessMap:
    """Directly-follows graph with exact counts and median/p95 durations, plus activity counts.

    Every node and arrow also says how many sagas it stands for (``sagas``): what a link to
    the saga list opens. Durations come from a sample of about ``DURATION_SAMPLE_SAGAS``
    sagas (see transitions).
    """
    scope, params = q.message_scope(filters)
    merged: dict[tuple[str, str], int] = {}
    merged_sagas: dict[tuple[str, str], int] = {}
    names = activity_names(q)
    for _saga_type, a, b, n, k in _pair_counts(q, scope, params, by, names):
        merged[(a, b)] = merged.get((a, b), 0) + int(n)
        merged_sagas[(a, b)] = merged_sagas.get((a, b), 0) + int(k)
    through = _sagas_through(q, scope, params, by, names)
    sampled = {
        (key[0], key[1]): quantiles
        for key, (quantiles, _max) in _pair_durations(
            q, scope, params, by, names, "0.5, 0.95", per_type=False
        ).items()
    }
    rows = [(a, b, n, sampled.get((a, b), [0.0, 0.0])) for (a, b), n in merged.items()]
    rows.sort(key=lambda r: (-r[2], r[0], r[1]))
    counts: dict[str, list[int]] = {}
    edges = []
    for source, target, n, quantiles in rows:
        if source == _START:
            counts.setdefault(target, [0, 0, 0])[1] += int(n)
        if target == _END:
            counts.setdefault(source, [0, 0, 0])[2] += int(n)
        else:
            counts.setdefault(target, [0, 0, 0])[0] += int(n)
        if source != _START and target != _END:
            edges.append(
                ProcessEdge(source, target, int(n), float(quantiles[0]), float(quantiles[1]),
                            sagas=merged_sagas[(source, target)])
            )
    nodes = sorted(
        (ProcessNode(a, c[0], c[1], c[2], sagas=through.get(a, 0)) for a, c in counts.items()),
        key=lambda node: (-node.count, node.activity),
    )
    return ProcessMap(nodes=nodes, edges=edges, sagas=sum(node.starts for node in nodes))


def variants(
    q: StateQuery, filters: SagaFilter | None, limit: int = 20, by: str = "type"
) -> list[Variant]:
    """The most frequent activity sequences, with their share of sagas and median cycle time."""
    if limit < 1:
        raise QueryError(f"limit must be positive, got {limit}")
    scope, params = q.message_scope(filters)
    params["limit"] = int(limit)
    rows = q.run(
        f"""
SELECT acts AS activities, count() AS n,
       n / sum(n) OVER () AS share, median(cycle_s) AS median_cycle_s
FROM ({_sequences_sql(scope, by)})
GROUP BY activities ORDER BY n DESC, activities LIMIT {{limit:UInt32}}""",
        params,
    ).rows
    names = activity_names(q)
    return [
        Variant(tuple(names.get(int(a), f"#{a}") for a in r[0]), int(r[1]), float(r[2]),
                float(r[3]))
        for r in rows
    ]


def step_times(q: StateQuery, filters: SagaFilter | None) -> list[StepTime]:
    """Per (saga type, step, service): time messages waited in Kafka before the service's
    handler picked them up, and how long the handler ran (its span), p50 and p95.

    Waiting is the handler span's start minus the message's Kafka time; handling is the span's
    duration. Both clocks are the services' wall clocks (spans), not ``ce_time``. (The
    aggregate is not named ``saga_type``: the scope's type filter would then read it.)
    """
    scope, params = q.message_scope(filters)
    rows = q.run(
        f"""
SELECT m.of_saga_type AS st, m.step_name AS step, s.service AS service, count() AS n,
       quantiles(0.5, 0.95)(greatest(dateDiff('millisecond', m.kafka_time, s.start_time), 0)
                            / 1000.0) AS wait,
       quantiles(0.5, 0.95)(dateDiff('microsecond', s.start_time, s.end_time) / 1e6) AS handle
FROM (SELECT service, message_id, start_time, end_time FROM spans
      WHERE kind = 'CONSUMER' AND message_id != '') AS s
INNER JOIN (
    SELECT message_id, any(saga_type) AS of_saga_type,
           any(if(step != '', toString(step), toString(type))) AS step_name,
           min(kafka_time) AS kafka_time
    FROM messages
    WHERE {scope} AND message_id IN (
        SELECT message_id FROM spans WHERE kind = 'CONSUMER' AND message_id != '')
    GROUP BY message_id
) AS m ON m.message_id = s.message_id
GROUP BY st, step, service
ORDER BY st, n DESC, step, service""",
        params,
    ).rows
    return [
        StepTime(
            saga_type=r[0], step=r[1], service=r[2], count=int(r[3]),
            wait_p50_s=float(r[4][0]), wait_p95_s=float(r[4][1]), handle_count=int(r[3]),
            handle_p50_s=float(r[5][0]), handle_p95_s=float(r[5][1]),
        )
        for r in rows
    ]
