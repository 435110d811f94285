"""The numbers behind the saga metrics: one pass over the saga state, a few small reads.

What Prometheus scrapes (``sagascope.alerter.saga_metrics``) is asked here, of the same saga
state every other question uses, so a gauge agrees with ``sagascope stalled`` and the dashboard:

- sagas by (saga type, status), and stalled sagas by (saga type, step they are stalled after);
- finished sagas by (saga type, outcome) and their cycle times, bucketed for a histogram;
- open alerts by saga type (the ``alerts`` table), those of silenced groups apart, as the
  Alerts page and ``sagascope alerts`` count them;
- the Kafka time of the newest stored saga message, and the collector's watermark.

All of it is one scan of ``saga_state`` grouped into a few hundred rows at most (types x
statuses x steps x buckets), whatever the number of sagas: no saga id leaves the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sagascope.queries.alerts import alert_groups
from sagascope.queries.exceptions import QueryError
from sagascope.queries.results import FINISHED_STATUSES
from sagascope.queries.state import StateQuery
from sagascope.store.timetext import as_utc

__all__ = ["CYCLE_TIME_BUCKETS_S", "CycleTimeBuckets", "SagaMetrics", "saga_metrics"]

#: Upper bounds (seconds) of the cycle-time histogram: flows of seconds up to a week.
CYCLE_TIME_BUCKETS_S: tuple[float, ...] = (
    1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400, 259200, 604800,
)


@dataclass
class CycleTimeBuckets:
    """Cycle times of one saga type's finished sagas: counts per bucket (not cumulative)."""

    #: ``counts[i]``: sagas with ``bounds[i-1] < cycle time <= bounds[i]``; the last entry
    #: (index ``len(bounds)``) counts those above every bound.
    counts: list[int]
    sum_s: float = 0.0

    def cumulative(self) -> list[int]:
        """Counts at or below each bound, then the total (the ``+Inf`` bucket)."""
        out, running = [], 0
        for n in self.counts:
            running += n
            out.append(running)
        return out


@dataclass
class SagaMetrics:
    """One snapshot of the saga metrics; every mapping has bounded keys (no saga ids)."""

    bounds_s: tuple[float, ...]
    #: (saga type, status) -> sagas; every status of ``STATUSES`` that occurs.
    sagas: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (saga type, step stalled after) -> stalled sagas.
    stalled: dict[tuple[str, str], int] = field(default_factory=dict)
    #: saga type -> cycle times of its finished sagas.
    cycle_times: dict[str, CycleTimeBuckets] = field(default_factory=dict)
    #: saga type -> open alerts not under a silence.
    open_alerts: dict[str, int] = field(default_factory=dict)
    #: saga type -> open alerts of silenced groups.
    silenced_alerts: dict[str, int] = field(default_factory=dict)
    #: Kafka time of the newest stored saga message (None: no saga stored).
    newest_message: datetime | None = None
    #: The collector's watermark (None: no collector reports progress).
    watermark: datetime | None = None
    #: The store's clock when asked (ages are measured against it, not the caller's clock).
    now: datetime | None = None

    @property
    def started(self) -> dict[str, int]:
        """saga type -> sagas stored (each counted once, whatever its status)."""
        out: dict[str, int] = {}
        for (saga_type, _), n in self.sagas.items():
            out[saga_type] = out.get(saga_type, 0) + n
        return out

    @property
    def finished(self) -> dict[tuple[str, str], int]:
        """(saga type, outcome) -> finished sagas (completed, failed, compensated)."""
        return {k: n for k, n in self.sagas.items() if k[1] in FINISHED_STATUSES}


def _check_bounds(bounds_s: Sequence[float]) -> tuple[float, ...]:
    bounds = tuple(float(b) for b in bounds_s)
    if not bounds or any(b <= 0 for b in bounds) or list(bounds) != sorted(set(bounds)):
        raise QueryError(f"cycle-time buckets must be positive and increasing, got {bounds_s!r}")
    return bounds


def saga_metrics(q: StateQuery, bounds_s: Sequence[float] = CYCLE_TIME_BUCKETS_S) -> SagaMetrics:
    """The saga metrics, read from the store now (see the module docstring)."""
    bounds = _check_bounds(bounds_s)
    sql, params = q.sagas_sql(None)
    # multiIf over the bounds: ~2x faster than arrayFirstIndex's lambda per saga (at 200k
    # sagas, bench_metrics.py), and inclusive like Prometheus's `le`.
    buckets = ", ".join(f"duration_s <= {{bound_{i}:Float64}}, {i}" for i in range(len(bounds)))
    params.update({f"bound_{i}": b for i, b in enumerate(bounds)})
    finished = ", ".join(f"'{s}'" for s in FINISHED_STATUSES)
    # One row per (type, status, stalled step, bucket); the bucket only for finished sagas.
    # The newest message rides along: max(ingest_time) over `messages` cost as much as this.
    rows = q.run(
        f"""
        SELECT saga_type, status,
            if(status = 'stalled', last_step, '') AS stalled_step,
            if(status IN ({finished}), multiIf({buckets}, {len(bounds)}), -1) AS bucket,
            count() AS sagas, sum(duration_s) AS seconds, max(last_kafka_time) AS newest
        FROM ({sql})
        GROUP BY saga_type, status, stalled_step, bucket
        """,
        params,
    ).rows
    out = SagaMetrics(bounds_s=bounds)
    for saga_type, status, step, bucket, n, seconds, newest in rows:
        saga_type, n = str(saga_type), int(n)
        key = (saga_type, str(status))
        out.sagas[key] = out.sagas.get(key, 0) + n
        if status == "stalled":
            out.stalled[(saga_type, str(step))] = out.stalled.get((saga_type, str(step)), 0) + n
        if int(bucket) >= 0:
            hist = out.cycle_times.setdefault(saga_type, CycleTimeBuckets([0] * (len(bounds) + 1)))
            hist.counts[int(bucket)] += n
            hist.sum_s += float(seconds)
        newest = as_utc(newest)
        if out.newest_message is None or newest > out.newest_message:
            out.newest_message = newest
    # Since now: open alerts only (resolved ones are not counted here).
    for group in alert_groups(q.store, since=datetime.now(UTC)):
        counted = out.silenced_alerts if group.state == "silenced" else out.open_alerts
        if group.open:
            counted[group.saga_type] = counted.get(group.saga_type, 0) + group.open
    out.watermark, out.now = _watermark_and_now(q)
    return out


def _watermark_and_now(q: StateQuery) -> tuple[datetime | None, datetime]:
    row: Any = q.run(
        "SELECT (SELECT count() FROM progress) AS p, "
        "(SELECT min(read_until) FROM (SELECT read_until FROM progress FINAL)), now64(3, 'UTC')"
    ).rows[0]
    progress, watermark, now = row
    return (as_utc(watermark) if progress else None, as_utc(now))
