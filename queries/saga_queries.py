"""The query layer: one method per question, for the dashboard, the CLI and the alerter.

Every value from the user reaches ClickHouse as a server-side parameter (``{name:Type}``);
saga state is derived in ClickHouse (the ``saga_state`` view), never maintained in Python.

    queries = SagaQueries(store, status_rules=settings.alerts.status_rules)
    flow = queries.flow("order-123")          # by saga id, trace id or message id
    queries.status_counts(SagaFilter(saga_type="order-fulfillment"))
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sagascope.queries import alerts as _alerts
from sagascope.queries import analytics as _analytics
from sagascope.queries import failures as _failures
from sagascope.queries import metrics as _metrics
from sagascope.queries import traces as _traces
from sagascope.queries.causes import FAILING_MARKERS
from sagascope.queries.exceptions import NotFound, QueryError
from sagascope.queries.flows import FLOW_COLUMNS, MAX_FLOW_ROWS, causal_order
from sagascope.queries.results import (
    FINISHED_STATUSES,
    STATUSES,
    AlertGroup,
    CompensationPair,
    CompensationSummary,
    CycleTimeStats,
    FailureCount,
    Flow,
    Freshness,
    ProcessMap,
    SagaDiagnosis,
    SagaFilter,
    SagaPage,
    SagaSummary,
    StalledSaga,
    StallRule,
    StepTime,
    ThroughputPoint,
    Transition,
    Variant,
)
from sagascope.queries.rows import from_store_columns
from sagascope.queries.state import StateQuery, state_sql
from sagascope.settings import AlertSettings, StatusRule
from sagascope.store.base import StoreReader
from sagascope.store.timetext import as_utc

log = logging.getLogger(__name__)

#: Sort keys of :meth:`SagaQueries.saga_page` and the saga-state column each sorts by.
SAGA_SORT_KEYS: dict[str, str] = {
    "last_heard": "last_kafka_time",
    "started": "started",
    "cycle_time": "duration_s",
    "silent": "silent_s",
    "messages": "message_count",
    "saga_id": "saga_id",
    "status": "status",
    "saga_type": "saga_type",
}

__all__ = ["HIDDEN_PAYLOAD", "SAGA_SORT_KEYS", "SagaQueries"]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The payload text of every flow message when payloads are hidden.
HIDDEN_PAYLOAD = "(payload hidden: dashboard.hide_payloads)"


class SagaQueries:
    r"""Answers about sagas from a store.

    Args:
        store: any :class:`~sagascope.store.StoreReader` (a read-only store is enough).
        status_rules: ``StatusRule(type, status, saga_type="")``: a message of ``type`` marks
            the saga ``status`` when it carries no ``ce_sagastatus``.
        stall_rules: :class:`StallRule`\ s ``(saga_type or "*", step or "*", threshold_s)``;
            the first match wins.
        default_threshold_s: the threshold where no rule matches.
        hide_payloads: flows carry :data:`HIDDEN_PAYLOAD` instead of message payloads (size
            and truncation stay), for dashboards whose viewers may not read them.
    """

    def __init__(
        self,
        store: StoreReader,
        *,
        status_rules: Sequence[StatusRule] = (),
        stall_rules: Sequence[StallRule] = (),
        default_threshold_s: float = 300.0,
        hide_payloads: bool = False,
    ) -> None:
        self._q = StateQuery(store, status_rules, stall_rules, default_threshold_s)
        self.store = store
        self.hide_payloads = hide_payloads

    @classmethod
    def from_settings(
        cls, store: StoreReader, alerts: AlertSettings, *, hide_payloads: bool = False
    ) -> SagaQueries:
        """Status rules, fixed thresholds and the default threshold from ``[alerts]``."""
        stall_rules = [
            StallRule(r.saga_type, r.step, r.threshold_s) for r in alerts.rules if r.threshold_s > 0
        ]
        return cls(
            store,
            status_rules=alerts.status_rules,
            stall_rules=stall_rules,
            default_threshold_s=alerts.default_threshold_s,
            hide_payloads=hide_payloads,
        )

    # ---- one saga ------------------------------------------------------------------------

    def flow(self, key: str) -> Flow:
        """The flow of the saga ``key`` names: a saga id, else a message id, else a trace id.

        Raises:
            NotFound: when nothing matches ``key``.
        """
        key = key or ""
        if not key.strip():
            raise QueryError("flow needs a saga id, trace id or message id")
        try:
            return self._flow_of(key)
        except NotFound:
            # Exact first (ids may carry any character); then forgive pasted whitespace.
            if key.strip() == key:
                raise
            return self._flow_of(key.strip())

    def _flow_of(self, key: str) -> Flow:
        # The status parameters (the watermark among them) once for the whole lookup.
        _, params = self._q.sagas_sql(None)
        rows, state = self._saga_rows(key, params)
        if rows:
            return self._flow(key, "saga_id", key, rows, (), state)
        for matched_by in ("message_id", "trace_id"):
            found = self._q.run_point(
                f"SELECT saga_id, any(trace_id) AS trace, count() AS n FROM messages "
                f"WHERE {matched_by} = {{key:String}} GROUP BY saga_id ORDER BY n DESC, saga_id",
                {"key": key},
            ).rows
            if not found:
                continue
            sagas = [r[0] for r in found if r[0]]
            if sagas:
                rows, state = self._saga_rows(sagas[0], params)
                return self._flow(key, matched_by, sagas[0], rows, tuple(sagas[1:]), state)
            # Messages tied to no saga: show their trace.
            trace = found[0][1]
            rows = self._rows("trace_id = {key:String} AND saga_id = ''", trace)
            return self._flow(key, matched_by, "", rows, (), None)
        raise NotFound(f"no saga, message or trace {key!r}")

    def _rows(self, where: str, key: str) -> list[dict[str, Any]]:
        result = self._q.run_point(
            f"SELECT {FLOW_COLUMNS} FROM messages WHERE {where} "
            f"ORDER BY event_time LIMIT {MAX_FLOW_ROWS}",
            {"key": key},
        )
        if len(result) >= MAX_FLOW_ROWS:
            log.warning("flow %s cut at %d messages", key, MAX_FLOW_ROWS)
        return result.dicts()

    def _saga_rows(
        self, saga_id: str, params: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], tuple[str, str, float, datetime] | None]:
        """The saga's messages and its (status, saga type, cycle time, causal start) from the
        saga state, in one query.

        One query instead of two (messages, then saga state) saved 3-8 ms of a ~35 ms flow at
        10M messages (interleaved A/B, bench_queries.py): the state rides along as a scalar
        subquery.
        """
        state = state_sql(prefilter="saga_id = {saga_id:String}", with_rules=bool(self._q.status_rules))
        result = self._q.run_point(
            f"SELECT {FLOW_COLUMNS}, "
            f"(SELECT groupArray([status, saga_type, toString(duration_s), "
            f"toString(toUnixTimestamp64Milli(started))]) FROM ({state})) "
            f"AS flow_state "
            f"FROM messages WHERE saga_id = {{saga_id:String}} "
            f"ORDER BY event_time LIMIT {MAX_FLOW_ROWS}",
            {**params, "saga_id": saga_id},
        )
        if len(result) >= MAX_FLOW_ROWS:
            log.warning("flow %s cut at %d messages", saga_id, MAX_FLOW_ROWS)
        rows = result.dicts()
        found = rows[0]["flow_state"] if rows else []
        if not found:
            return rows, None
        started = _EPOCH + timedelta(milliseconds=int(found[0][3]))
        return rows, (str(found[0][0]), str(found[0][1]), float(found[0][2]), started)

    def _flow(
        self,
        key: str,
        matched_by: str,
        saga_id: str,
        rows: list[dict[str, Any]],
        related: tuple[str, ...],
        state: tuple[str, str, float, datetime] | None,
    ) -> Flow:
        if self.hide_payloads:
            rows = [{**r, "payload": HIDDEN_PAYLOAD} for r in rows]
        messages = causal_order(rows)
        times = [m.event_time for m in messages]
        status, saga_type, cycle_s, started = (
            state if state is not None else ("", "", None, min(times) if times else None))
        traces = tuple(dict.fromkeys(m.trace_id for m in messages if m.trace_id))
        return Flow(
            key=key,
            matched_by=matched_by,
            saga_id=saga_id,
            saga_type=saga_type or next((m.saga_type for m in messages if m.saga_type), ""),
            status=status,
            messages=messages,
            trace_ids=traces,
            started=started,
            last_event=max(times) if times else None,
            related_sagas=related,
            cycle_time_s=cycle_s,
        )

    # ---- many sagas ----------------------------------------------------------------------

    def sagas(self, filters: SagaFilter | None = None, limit: int = 100) -> list[SagaSummary]:
        """Sagas matching ``filters``, most recently heard from first."""
        if limit < 1:
            raise QueryError(f"limit must be positive, got {limit}")
        sql, params = self._q.sagas_sql(filters)
        params["limit"] = int(limit)
        rows = self._q.run(
            f"{sql} ORDER BY last_kafka_time DESC, saga_id LIMIT {{limit:UInt32}}", params
        ).dicts()
        return [_summary(r) for r in rows]

    def summaries(self, saga_ids: Sequence[str]) -> dict[str, SagaSummary]:
        """The current state of each of these sagas, by saga id (unknown ids are left out)."""
        if not saga_ids:
            return {}
        _, params = self._q.sagas_sql(None)
        params["saga_ids"] = list(saga_ids)
        sql = state_sql(
            prefilter="saga_id IN {saga_ids:Array(String)}", with_rules=bool(self._q.status_rules)
        )
        return {r["saga_id"]: _summary(r) for r in self._q.run(sql, params).dicts()}

    def status_counts(self, filters: SagaFilter | None = None) -> dict[str, int]:
        """Number of sagas per status (every status present, zeros included)."""
        sql, params = self._q.sagas_sql(filters)
        rows = self._q.run(f"SELECT status, count() FROM ({sql}) GROUP BY status", params).rows
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({status: int(n) for status, n in rows})
        return counts

    def stalled(
        self, filters: SagaFilter | None = None, as_of: datetime | None = None
    ) -> list[StalledSaga]:
        """Unfinished sagas silent for longer than their threshold, longest silence first.

        Silence is measured to the collector's watermark, so collector lag raises no false
        stalls; ``as_of`` replaces the watermark (for tests and "what if" questions).
        """
        f = dataclasses.replace(filters or SagaFilter(), status="stalled")
        sql, params = self._q.sagas_sql(f, ref=as_of)
        # Only the columns a stall needs: the alerter asks every few seconds, and every
        # stalled saga is a row (thousands while a system is stuck).
        rows = self._q.run(
            f"SELECT {_STALL_COLUMNS} FROM ({sql}) ORDER BY silent_s DESC, saga_id", params
        ).dicts()
        successors = _analytics.usual_next(self._q, {(r["saga_type"], r["last_type"]) for r in rows})
        out = []
        for r in rows:
            waiting = _waiting_text(r, successors.get((r["saga_type"], r["last_type"]), ""))
            out.append(
                StalledSaga(
                    saga_id=r["saga_id"],
                    saga_type=r["saga_type"],
                    step=r["last_step"],
                    last_type=r["last_type"],
                    waiting_for=waiting,
                    since=as_utc(r["last_kafka_time"]),
                    threshold_s=float(r["threshold_s"]),
                    silent_s=float(r["silent_s"]),
                )
            )
        return out

    # ---- analytics -----------------------------------------------------------------------

    def cycle_times(self, filters: SagaFilter | None = None) -> list[CycleTimeStats]:
        """Cycle-time percentiles of finished sagas: overall (``saga_type="*"``), then per type."""
        return _analytics.cycle_times(self._q, filters)

    def cycle_times_over_time(
        self, filters: SagaFilter | None = None, bucket_s: float = 3600
    ) -> list[CycleTimeStats]:
        """Cycle-time percentiles per (bucket of finishing time, saga type)."""
        return _analytics.cycle_times_over_time(self._q, filters, bucket_s)

    def throughput(
        self, filters: SagaFilter | None = None, bucket_s: float = 60
    ) -> list[ThroughputPoint]:
        """Messages, sagas started and sagas finished per time bucket (event time)."""
        return _analytics.throughput(self._q, filters, bucket_s)

    def transitions(self, filters: SagaFilter | None = None, by: str = "step") -> list[Transition]:
        """Step-to-next-message durations per (saga type, from step, to step)."""
        return _analytics.transitions(self._q, filters, by)

    def failures(self, filters: SagaFilter | None = None) -> list[FailureCount]:
        """Failures by saga type, step, service and error, most frequent first."""
        return _failures.failures(self._q, filters)

    def compensations(self, filters: SagaFilter | None = None) -> list[CompensationPair]:
        """Each undone step beside its undo; missing, failed or duplicated undos flagged."""
        return _failures.compensations(self._q, filters)

    def compensation_summary(
        self, filters: SagaFilter | None = None, limit: int = 500
    ) -> CompensationSummary:
        """Pairs per state and the first ``limit`` pairs, problems first (what a page shows)."""
        return _failures.compensation_summary(self._q, filters, limit)

    def process_map(self, filters: SagaFilter | None = None, by: str = "type") -> ProcessMap:
        """Directly-follows graph (activities = message types, or steps) discovered from traffic."""
        return _analytics.process_map(self._q, filters, by)

    def variants(
        self, filters: SagaFilter | None = None, limit: int = 20, by: str = "type"
    ) -> list[Variant]:
        """Most frequent activity sequences with their frequency and share."""
        return _analytics.variants(self._q, filters, limit, by)

    # ---- freshness -----------------------------------------------------------------------

    def watermark(self) -> datetime:
        """Time up to which every partition is stored (the collector's progress), else now."""
        return self._q.watermark()

    def data_as_of(self) -> datetime | None:
        """The watermark when a collector reports progress, else the last ingest time."""
        value = self._q.run(
            "SELECT (SELECT count() FROM progress) AS p, "
            "(SELECT min(read_until) FROM (SELECT read_until FROM progress FINAL)) AS w, "
            "(SELECT max(ingest_time) FROM messages) AS i, (SELECT count() FROM messages) AS n"
        ).rows[0]
        if value[0]:
            return as_utc(value[1])
        return as_utc(value[2]) if value[3] else None

    def freshness(self) -> Freshness:
        """The collector's watermark and when the newest message was stored, by the store's
        clock; ``Freshness.warning(limit_s)`` says when either is too old."""
        checked, progressed, watermark, newest, stored = self._q.run(
            "SELECT now64(3, 'UTC'), (SELECT count() FROM progress), "
            "(SELECT min(read_until) FROM (SELECT read_until FROM progress FINAL)), "
            "(SELECT max(ingest_time) FROM messages), (SELECT count() FROM messages)"
        ).rows[0]
        return Freshness(
            checked_at=as_utc(checked),
            watermark=as_utc(watermark) if progressed else None,
            newest_message=as_utc(newest) if stored else None,
        )

    # ---- the saga list, why a saga is where it is, alert history (dashboard) --------------

    def saga_page(
        self,
        filters: SagaFilter | None = None,
        *,
        sort: str = "last_heard",
        descending: bool = True,
        offset: int = 0,
        limit: int = 50,
    ) -> SagaPage:
        """One page of the sagas matching ``filters``, sorted, with the exact total.

        Args:
            sort: one of ``SAGA_SORT_KEYS`` (``last_heard``, ``started``, ``cycle_time``,
                ``silent``, ``messages``, ``saga_id``, ``status``, ``saga_type``).
        """
        column = SAGA_SORT_KEYS.get(sort)
        if column is None:
            raise QueryError(f"sort must be one of {', '.join(SAGA_SORT_KEYS)}, got {sort!r}")
        if limit < 1 or offset < 0:
            raise QueryError(f"need limit >= 1 and offset >= 0, got {limit} and {offset}")
        sql, params = self._q.sagas_sql(filters)
        params.update(limit=int(limit), offset=int(offset))
        direction = "DESC" if descending else "ASC"
        rows = self._q.run(
            f"SELECT *, count() OVER () AS total FROM ({sql}) "
            f"ORDER BY {column} {direction}, saga_id {direction} "
            f"LIMIT {{limit:UInt32}} OFFSET {{offset:UInt64}}",
            params,
        ).dicts()
        if rows:
            total = int(rows[0]["total"])
        else:
            total = int(self._q.run(f"SELECT count() FROM ({sql})", params).scalar() or 0)
        return SagaPage([_summary(r) for r in rows], total, int(offset), int(limit))

    def saga_types(self) -> list[str]:
        """Every saga type stored, sorted."""
        rows = self._q.run("SELECT DISTINCT saga_type FROM saga_state WHERE saga_type != ''")
        return sorted(str(r[0]) for r in rows.rows)

    def filter_choices(self, saga_type: str | None = None) -> dict[str, list[str]]:
        """Names to filter by: ``services`` and ``steps`` seen (of one saga type, if given)."""
        rows = self._q.run(
            "SELECT groupUniqArray(toString(source)), groupUniqArrayIf(toString(step), step != '') "
            "FROM messages WHERE saga_id != '' "
            "AND ({saga_type:String} = '' OR saga_type = {saga_type:String})",
            {"saga_type": saga_type or ""},
        ).rows
        services, steps = rows[0] if rows else ([], [])
        return {"services": sorted(s for s in services if s), "steps": sorted(steps)}

    def diagnosis(self, saga_id: str) -> SagaDiagnosis | None:
        """What the saga last did, what it waits for and since when, against which threshold.

        The expected next message is learned from the process map of its saga type, never
        from the saga's own earlier messages; a failed or compensating saga has its cause.
        Returns None for an unknown saga id.
        """
        _, params = self._q.sagas_sql(None)
        params["saga_id"] = saga_id
        sql = state_sql(
            prefilter="saga_id = {saga_id:String}", with_rules=bool(self._q.status_rules)
        )
        rows = self._q.run_point(sql, params).dicts()
        if not rows:
            return None
        r = rows[0]
        rule = int(r["stall_rule"])
        if rule:
            matched = self._q.stall_rules[rule - 1]
            source = f"rule {matched.saga_type}/{matched.step} in [[alerts.rules]]"
        else:
            source = "alerts.default_threshold_s"
        failure = None
        if r["marker"] in FAILING_MARKERS:
            failure = _failures.failure_of(self._q, saga_id, r["status"])
        return SagaDiagnosis(
            saga_id=saga_id,
            status=r["status"],
            last_step=r["last_step"],
            last_type=r["last_type"],
            last_source=r["last_source"],
            waiting_for=self._waiting_for(r),
            since=as_utc(r["last_kafka_time"]),
            silent_s=float(r["silent_s"]),
            threshold_s=float(r["threshold_s"]),
            threshold_source=source,
            as_of=as_utc(params["ref"]),
            failure=failure,
        )

    def _waiting_for(self, r: dict[str, Any]) -> str:
        if r["marker"] in FINISHED_STATUSES:
            return ""
        key = (r["saga_type"], r["last_type"])
        return _waiting_text(r, _analytics.usual_next(self._q, {key}).get(key, ""))

    def waiting_by_step(self, filters: SagaFilter | None = None) -> dict[str, dict[str, int]]:
        """Unfinished sagas by their current step: {step: {"running": n, "stalled": n, ...}}."""
        sql, params = self._q.sagas_sql(filters)
        rows = self._q.run(
            f"SELECT last_step, status, count() FROM ({sql}) "
            "WHERE status IN ('running', 'stalled', 'compensating') GROUP BY last_step, status",
            params,
        ).rows
        out: dict[str, dict[str, int]] = {}
        for step, status, n in rows:
            out.setdefault(str(step), {})[str(status)] = int(n)
        return out

    def step_times(self, filters: SagaFilter | None = None) -> list[StepTime]:
        """Where time goes: per step and service, waiting in Kafka versus handling (spans)."""
        return _analytics.step_times(self._q, filters)

    def trace_spans(self, trace_ids: Sequence[str]) -> list[_traces.TraceSpan]:
        """Every stored span of these traces (a flow's waterfall), by start time."""
        return _traces.trace_spans(self._q, trace_ids)

    def slowest_handlings(
        self, filters: SagaFilter | None, saga_type: str, step: str, service: str, limit: int = 10
    ) -> list[_traces.SlowHandling]:
        """The handlings of a step by a service that took longest (exemplars of its p95)."""
        return _traces.slowest_handlings(self._q, filters, saga_type, step, service, limit)

    def data_since(self) -> datetime | None:
        """The oldest event time stored; None for an empty store."""
        return _traces.data_since(self._q)

    def alerts(
        self,
        *,
        saga_type: str | None = None,
        state: str | None = None,
        since: datetime | None = None,
        limit: int | None = 100,
    ) -> list[_alerts.Alert]:
        """Alert history (see :func:`sagascope.queries.alerts.list_alerts`), of one saga type."""
        return _alerts.list_alerts(
            self.store, state=state, since=since, limit=limit, saga_type=saga_type
        )

    def acknowledgements(self) -> dict[tuple[str, str], _alerts.Acknowledgement]:
        """The latest acknowledgement or silence per alert group (saga type, step)."""
        return _alerts.acknowledgements(self.store)

    def alert_groups(
        self,
        *,
        since: datetime | None = None,
        saga_type: str | None = None,
        now: datetime | None = None,
    ) -> list[AlertGroup]:
        """Alerts by (saga type, step) with their state and handling (see
        :func:`sagascope.queries.alerts.alert_groups`)."""
        return _alerts.alert_groups(self.store, since=since, saga_type=saga_type, now=now)

    def acknowledgement_history(
        self, *, saga_type: str | None = None, since: datetime | None = None, limit: int = 200
    ) -> list[_alerts.Acknowledgement]:
        """Every acknowledgement, silence and clearing, newest first."""
        return _alerts.acknowledgement_history(
            self.store, saga_type=saga_type, since=since, limit=limit
        )

    # ---- metrics -------------------------------------------------------------------------

    def metrics(
        self, cycle_time_buckets_s: Sequence[float] = _metrics.CYCLE_TIME_BUCKETS_S
    ) -> _metrics.SagaMetrics:
        """Sagas by type and status, stalled by step, cycle-time buckets, open alerts, freshness.

        What the Prometheus endpoint exposes; one scan of the saga state (see queries/metrics.py).
        """
        return _metrics.saga_metrics(self._q, cycle_time_buckets_s)


def _summary(r: dict[str, Any]) -> SagaSummary:
    return from_store_columns(SagaSummary, r, messages=int(r["message_count"]))


_STALL_COLUMNS = (
    "saga_id, saga_type, last_step, last_type, last_kind, last_kafka_time, threshold_s, silent_s"
)


def _waiting_text(row: dict[str, Any], usual_next: str) -> str:
    """What a saga waits for: the usual next message, or at least the reply to its command."""
    last_type = row["last_type"]
    if row["last_kind"] == "command":
        return f"{usual_next} (reply to {last_type})" if usual_next else f"reply to {last_type}"
    return usual_next or f"next step after {row['last_step']}"
