"""Saga state in SQL: status, stall thresholds and filters over the ``saga_state`` view.

Everything is derived by ClickHouse from ``saga_state`` (fed from ``messages`` by a
materialized view); Python only builds the SQL text (fixed, no user input) and its parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sagascope.instrumentation.contract import SAGA_STATUSES
from sagascope.queries.causes import FAILING_MARKERS, cause_filter_sql
from sagascope.queries.exceptions import QueryError
from sagascope.queries.results import STATUSES, SagaFilter, StallRule
from sagascope.settings import StatusRule
from sagascope.store.base import StoreReader
from sagascope.store.headers import header_sql
from sagascope.store.schema import STATUS_RANK, activity_hash
from sagascope.store.timetext import as_utc, clickhouse_param


def bind(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as both backends take them (times as UTC text, sequences as lists)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, datetime):
            value = clickhouse_param(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def check_status_rules(rules: Sequence[StatusRule]) -> tuple[StatusRule, ...]:
    for i, rule in enumerate(rules):
        if rule.status not in SAGA_STATUSES:
            raise QueryError(
                f"alerts.status_rules[{i}].status must be one of "
                f"{', '.join(sorted(SAGA_STATUSES))}, got {rule.status!r}"
            )
        if not rule.type:
            raise QueryError(f"alerts.status_rules[{i}].type must not be empty")
    return tuple(rules)


def check_stall_rules(rules: Sequence[StallRule]) -> tuple[StallRule, ...]:
    """The rules checked, empty names as ``*``."""
    out = []
    for i, rule in enumerate(rules):
        try:
            saga_type, step, threshold = rule.saga_type, rule.step, float(rule.threshold_s)
        except (AttributeError, TypeError, ValueError) as exc:
            raise QueryError(
                f"stall_rules[{i}] must be a StallRule(saga_type or '*', step or '*', threshold_s)"
            ) from exc
        if threshold <= 0:
            raise QueryError(f"stall_rules[{i}] threshold_s must be positive, got {threshold}")
        out.append(StallRule(str(saga_type or "*"), str(step or "*"), threshold))
    return tuple(out)


def _rule_marks_sql(prefilter: str) -> str:
    """Per saga, the latest outcome a status rule gives a message without ``ce_sagastatus``."""
    extra = f" AND {prefilter}" if prefilter else ""
    return f"""
    SELECT saga_id, max(tuple(kafka_time, toUInt8(indexOf({STATUS_RANK}, rule_status)),
                              rule_status)) AS rule_mark
    FROM (
        SELECT saga_id, kafka_time,
            {{rule_statuses:Array(String)}}[arrayFirstIndex(
                (rt, rs) -> rt = type AND (rs = '' OR rs = saga_type),
                {{rule_types:Array(String)}}, {{rule_saga_types:Array(String)}})] AS rule_status
        FROM messages
        WHERE saga_id != '' AND saga_status = '' AND has({{rule_types:Array(String)}}, type)
            {extra}
    )
    WHERE rule_status != ''
    GROUP BY saga_id"""


def state_sql(
    *,
    prefilter: str = "",
    with_rules: bool = False,
) -> str:
    """A subquery with one row per saga and its derived columns (status included).

    A saga runs from ``started`` (the event time of its first message heard: its causal
    start) to ``ended`` (its latest event time), so ``duration_s`` is never negative, however
    wrong the clock of the service heard last (in-flight sagas included).

    Needs the parameters ``ref`` (DateTime64: the watermark), ``default_threshold``,
    ``stall_types``, ``stall_steps``, ``stall_thresholds`` (and the rule arrays with rules).
    """
    where = f"WHERE {prefilter}" if prefilter else ""
    if with_rules:
        join = f"LEFT JOIN ({_rule_marks_sql(prefilter)}) AS rules USING (saga_id)"
        marker = "greatest(status_mark, rule_mark).3"
    else:
        join, marker = "", "status_mark.3"
    return f"""
SELECT
    saga_id, saga_type, first_message.2 AS started, last_message.2 AS last_event,
    last_message.1 AS last_kafka_time, message_count,
    last_message.3 AS last_step_raw, last_message.4 AS last_type,
    last_message.5 AS last_kind, last_message.6 AS last_source,
    if(last_step_raw != '', last_step_raw, last_type) AS last_step,
    {marker} AS marker,
    arrayFirstIndex(
        (a, b) -> (a = '*' OR a = saga_type) AND (b = '*' OR b = last_step),
        {{stall_types:Array(String)}}, {{stall_steps:Array(String)}}) AS stall_rule,
    if(stall_rule = 0, {{default_threshold:Float64}},
       {{stall_thresholds:Array(Float64)}}[stall_rule]) AS threshold_s,
    greatest(dateDiff('millisecond', last_kafka_time, {{ref:DateTime64(3, 'UTC')}}), 0) / 1000.0
        AS silent_s,
    multiIf(
        marker IN ('completed', 'failed', 'compensated'), marker,
        silent_s > threshold_s, 'stalled',
        marker = 'compensating', 'compensating',
        'running') AS status,
    fromUnixTimestamp64Milli(latest_event_ms, 'UTC') AS ended,
    dateDiff('millisecond', started, ended) / 1000.0 AS duration_s
FROM (
    SELECT saga_id, saga_type, first_message, message_count, last_message, status_mark,
           arrayMax(arrayMap(x -> x.1, path)) AS latest_event_ms
    FROM saga_state FINAL
    {where}
) AS state
{join}"""


def rule_params(
    status_rules: Sequence[StatusRule],
    stall_rules: Sequence[StallRule],
    default_threshold_s: float,
    ref: datetime,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "ref": ref,
        "default_threshold": float(default_threshold_s),
        "stall_types": [r.saga_type for r in stall_rules],
        "stall_steps": [r.step for r in stall_rules],
        "stall_thresholds": [float(r.threshold_s) for r in stall_rules],
    }
    if status_rules:
        params["rule_types"] = [r.type for r in status_rules]
        params["rule_statuses"] = [r.status for r in status_rules]
        params["rule_saga_types"] = [r.saga_type for r in status_rules]
    return params


def parse_attribute(attribute: str | tuple[str, str]) -> tuple[str, str]:
    """``(key, value)`` as given (exact: values may hold any character), or from typed
    ``"key=value"`` text, whose surrounding blanks are dropped."""
    if isinstance(attribute, tuple):
        key, value = attribute
        if not key.strip():
            raise QueryError("attribute filter needs a key")
        return key, value
    key, sep, value = attribute.partition("=")
    if not sep:
        raise QueryError(f"attribute filter must be key=value, got {attribute!r}")
    key = key.strip()
    if not key:
        raise QueryError("attribute filter needs a key")
    return key, value.strip()


def filter_sql(filters: SagaFilter | None) -> tuple[str, str, dict[str, Any]]:
    """(prefilter on saga_id inside state, condition on the state's columns, parameters)."""
    f = filters or SagaFilter()
    pre: list[str] = []
    post: list[str] = []
    params: dict[str, Any] = {}
    if f.service:
        pre.append("saga_id IN (SELECT saga_id FROM messages WHERE source = {f_service:String})")
        params["f_service"] = f.service
    if f.step:
        pre.append("saga_id IN (SELECT saga_id FROM messages WHERE step = {f_step:String} "
                   "OR (step = '' AND type = {f_step:String}))")
        params["f_step"] = f.step
    if f.attribute:
        key, value = parse_attribute(f.attribute)
        path = key.split(".")
        json_args = ", ".join(f"{{f_attr_k{i}:String}}" for i in range(len(path)))
        # A contract header a column reproduces is not in `headers` (see store/headers.py):
        # header_sql picks the expression that reads it, by key, among fixed SQL texts; the
        # key itself only ever travels as the parameter {header_key:String}.
        pre.append(
            "saga_id IN (SELECT saga_id FROM messages WHERE "
            f"{header_sql(key)} = {{f_attr_value:String}} OR "
            f"JSONExtractString(payload, {json_args}) = {{f_attr_value:String}} OR "
            f"toString(JSONExtractRaw(payload, {json_args})) = {{f_attr_value:String}})"
        )
        params["header_key"] = key
        params["f_attr_value"] = value
        for i, part in enumerate(path):
            params[f"f_attr_k{i}"] = part
    if f.saga_id_prefix:
        # saga_id leads the sort key of saga_state: a prefix reads only its granules.
        pre.append("startsWith(saga_id, {f_prefix:String})")
        params["f_prefix"] = f.saga_id_prefix
    if f.transition:
        # The process map's activities (step, else type) in arrival order, copies once.
        pre.append(
            "saga_id IN (SELECT saga_id FROM (SELECT saga_id, "
            "arraySort(x -> (x.2, x.1, x.3), path) AS raw, "
            "arrayFilter((x, k) -> k = 1, raw, arrayEnumerateUniq(arrayMap(y -> y.4, raw))) "
            "AS seq, arrayMap(x -> if(x.6 != 0, x.6, x.5), seq) AS acts FROM saga_state FINAL) "
            "WHERE has(arrayZip(arrayPopBack(acts), arrayPopFront(acts)), "
            f"({activity_hash('{f_from:String}')}, {activity_hash('{f_to:String}')})))"
        )
        params["f_from"], params["f_to"] = f.transition
    if f.cause:
        pre.append(cause_filter_sql())
        post.append(f"marker IN ({', '.join(repr(m) for m in FAILING_MARKERS)})")
        (params["f_cause_type"], params["f_cause_step"], params["f_cause_service"],
         params["f_cause_error"], params["f_cause_reason"]) = f.cause
    if f.current_step:
        post.append("last_step = {f_current_step:String}")
        params["f_current_step"] = f.current_step
    if f.saga_type:
        post.append("saga_type = {f_saga_type:String}")
        params["f_saga_type"] = f.saga_type
    if f.time_from is not None:
        post.append("ended >= {f_time_from:DateTime64(3, 'UTC')}")
        params["f_time_from"] = f.time_from
    if f.time_to is not None:
        post.append("started < {f_time_to:DateTime64(3, 'UTC')}")
        params["f_time_to"] = f.time_to
    if f.status:
        if f.status not in STATUSES:
            raise QueryError(f"status must be one of {', '.join(STATUSES)}, got {f.status!r}")
        post.append("status = {f_status:String}")
        params["f_status"] = f.status
    return " AND ".join(pre), " AND ".join(post), params


def _has_cause(filters: SagaFilter | None) -> bool:
    return filters is not None and filters.cause is not None


class StateQuery:
    """The store plus the status and stall configuration every question needs."""

    def __init__(
        self,
        store: StoreReader,
        status_rules: Sequence[StatusRule],
        stall_rules: Sequence[StallRule],
        default_threshold_s: float,
    ) -> None:
        if default_threshold_s <= 0:
            raise QueryError(f"default_threshold_s must be positive, got {default_threshold_s}")
        self.store = store
        self.status_rules = check_status_rules(status_rules)
        self.stall_rules = check_stall_rules(stall_rules)
        self.default_threshold_s = float(default_threshold_s)

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.store.query(sql, bind(params or {}))

    def run_point(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """A query reading a few granules: one thread is faster than spreading them out."""
        return self.store.query(sql, bind(params or {}), settings={"max_threads": 1})

    def watermark(self) -> datetime:
        """min(read_until) over the latest progress row per partition; now() without any."""
        value = self.run_point(
            "SELECT if(count() = 0, now64(3, 'UTC'), min(read_until)) "
            "FROM (SELECT read_until FROM progress FINAL)"
        ).scalar()
        return as_utc(value)

    def sagas_sql(
        self, filters: SagaFilter | None, ref: datetime | None = None
    ) -> tuple[str, dict[str, Any]]:
        """``SELECT * FROM <saga state> WHERE <filters>`` and its parameters."""
        pre, post, params = filter_sql(filters)
        params.update(
            rule_params(
                self.status_rules,
                self.stall_rules,
                self.default_threshold_s,
                ref if ref is not None else self.watermark(),
            )
        )
        if _has_cause(filters):
            params["failure_types"] = self.failure_types()
        sql = f"SELECT * FROM ({state_sql(prefilter=pre, with_rules=bool(self.status_rules))})"
        if post:
            sql += f" WHERE {post}"
        return sql, params

    def message_scope(self, filters: SagaFilter | None) -> tuple[str, dict[str, Any]]:
        """A condition on ``messages`` rows selecting the sagas ``filters`` match."""
        f = filters or SagaFilter()
        if not any(
            (f.time_from, f.time_to, f.status, f.service, f.step, f.attribute,
             f.saga_id_prefix, f.current_step, f.transition, f.cause)
        ):
            if f.saga_type:
                return "saga_id != '' AND saga_type = {f_saga_type:String}", {
                    "f_saga_type": f.saga_type
                }
            return "saga_id != ''", {}
        sql, params = self.sagas_sql(f)
        return f"saga_id IN (SELECT saga_id FROM ({sql}))", params

    def failure_types(self) -> list[str]:
        return [r.type for r in self.status_rules if r.status in ("failed", "compensating")]
