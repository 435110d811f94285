"""The store's schema: created and migrated idempotently, the same on chDB and on a server.

Table names (``messages``, ``spans``, ``alerts``) are part of the contract; columns may grow
(add them to the table's column list here and they are added with ``ADD COLUMN IF NOT EXISTS``).
With a cluster name set, each table is a ``Replicated*MergeTree`` named ``<table>_local`` on
every node plus a ``Distributed`` table under the contract name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sagascope.store.base import Store, check_identifier

#: How many recent insert tokens a table remembers for replayed-batch deduplication.
DEDUP_WINDOW = 10000

# Column codecs of ``messages``, explicit so a server (LZ4 by default) stores what chDB (ZSTD
# by default) does. Hex ids and hashes are random: entropy coding (ZSTD) halves them, LZ4
# cannot. Times and offsets grow along a saga: Delta before ZSTD. Measured at 10M messages
# in bench/bench_queries.py.
_ZSTD = "CODEC(ZSTD(1))"
_DELTA = "CODEC(Delta, ZSTD(1))"
# ZSTD(6) saves another ~6 B/msg on headers but costs insert CPU, the collector's bottleneck.
_ZSTD_DEEP = "CODEC(ZSTD(3))"

#: Rows per granule of ``messages`` and ``saga_state`` (the default is 8192).
GRANULE_ROWS = 1024


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]
    engine: str
    order_by: str
    extra: str = ""
    settings: str = f"non_replicated_deduplication_window = {DEDUP_WINDOW}"
    sharding_key: str = "rand()"
    #: Storage settings for every engine (replicated or not), e.g. the index granularity.
    layout: str = ""

    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


MESSAGES = Table(
    name="messages",
    columns=(
        ("topic", "LowCardinality(String)"),
        ("partition", f"UInt32 {_ZSTD}"),
        ("offset", f"UInt64 {_DELTA}"),
        ("kafka_time", f"DateTime64(3, 'UTC') {_DELTA}"),
        # ce_time, a correlation rule's time, or else the Kafka timestamp.
        ("event_time", f"DateTime64(3, 'UTC') {_DELTA}"),
        ("ingest_time", f"DateTime64(3, 'UTC') {_DELTA}"),
        ("kafka_key", f"String {_ZSTD}"),
        ("trace_id", f"String {_ZSTD}"),
        ("span_id", f"String {_ZSTD}"),
        ("saga_id", f"String {_ZSTD}"),
        ("saga_type", "LowCardinality(String)"),
        ("message_id", f"String {_ZSTD}"),
        ("causation_id", f"String {_ZSTD}"),
        ("kind", "LowCardinality(String)"),
        ("type", "LowCardinality(String)"),
        ("source", "LowCardinality(String)"),
        ("step", "LowCardinality(String)"),
        ("saga_status", "LowCardinality(String)"),
        ("compensates", "LowCardinality(String)"),
        # The headers no column reproduces; the others are bits of headers_elided and are
        # rebuilt on read (store/headers.py). Storing all of them cost 49-61 B/msg (10M bench).
        ("headers", f"Map(LowCardinality(String), String) {_ZSTD_DEEP}"),
        # Redacted and capped; the size and SHA-256 are of the payload as received.
        ("payload", f"String {_ZSTD_DEEP}"),
        ("payload_size", f"UInt32 {_ZSTD}"),
        ("payload_sha256", f"FixedString(64) {_ZSTD}"),
        ("payload_truncated", "Bool"),
        # headers | traceparent | rule:<topic regex> | key | none
        ("correlation", "LowCardinality(String)"),
        ("parse_error", f"String {_ZSTD}"),
        # Set on the last row of each link (a partition's rows of one poll), empty on the
        # others: sha256(previous link's chain_hash || the link's row digests); see store/audit.py.
        ("chain_hash", f"FixedString(64) {_ZSTD}"),
        # Bit i set: header headers.ELIDABLE[i] was received and its column reproduces it.
        ("headers_elided", f"UInt16 {_ZSTD}"),
    ),
    engine="MergeTree",
    order_by="(saga_id, event_time, topic, partition, offset)",
    extra=(
        "INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4, "
        "INDEX idx_message_id message_id TYPE bloom_filter(0.01) GRANULARITY 4"
    ),
    sharding_key="cityHash64(saga_id)",
    # A flow reads the granule(s) holding one saga's ~10 rows, every column: at the default
    # 8192 rows per granule that is ~28 ms in chDB, at GRANULE_ROWS ~12 ms (bench_queries.py).
    layout=f"index_granularity = {GRANULE_ROWS}",
)

SPANS = Table(
    name="spans",
    columns=(
        ("trace_id", "String"),
        ("span_id", "String"),
        ("parent_span_id", "String"),
        ("name", "LowCardinality(String)"),
        ("kind", "LowCardinality(String)"),
        ("service", "LowCardinality(String)"),
        ("start_time", "DateTime64(6, 'UTC')"),
        ("end_time", "DateTime64(6, 'UTC')"),
        ("status_code", "LowCardinality(String)"),
        ("status_message", "String"),
        ("saga_id", "String"),
        ("saga_type", "LowCardinality(String)"),
        ("message_id", "String"),
        ("attributes", "Map(String, String)"),
        ("links", "Array(Tuple(trace_id String, span_id String))"),
        ("events", "String"),
        ("ingest_time", "DateTime64(3, 'UTC')"),
        # Where the span record came from (the collector resumes past the highest offset).
        ("topic", "LowCardinality(String)"),
        ("partition", "UInt32"),
        ("offset", "UInt64"),
        # A telemetry record that is not a span is kept: its error and (redacted) payload.
        ("parse_error", "String"),
        ("payload", "String CODEC(ZSTD(3))"),
    ),
    engine="MergeTree",
    order_by="(trace_id, start_time, span_id)",
    extra="INDEX idx_saga_id saga_id TYPE bloom_filter(0.01) GRANULARITY 4",
    sharding_key="cityHash64(trace_id)",
)

ALERTS = Table(
    name="alerts",
    columns=(
        ("alert_id", "String"),
        # open | resolved
        ("state", "LowCardinality(String)"),
        ("saga_id", "String"),
        ("saga_type", "LowCardinality(String)"),
        ("step", "LowCardinality(String)"),
        ("waiting_for", "String"),
        ("since", "DateTime64(3, 'UTC')"),
        ("threshold_s", "Float64"),
        ("opened_at", "DateTime64(3, 'UTC')"),
        ("resolved_at", "Nullable(DateTime64(3, 'UTC'))"),
        ("resolution", "String"),
        ("link", "String"),
        ("updated_at", "DateTime64(3, 'UTC')"),
    ),
    # One row per alert id after merges: the latest state wins (query with FINAL).
    engine="ReplacingMergeTree(updated_at)",
    order_by="(alert_id)",
    sharding_key="cityHash64(alert_id)",
)

PROGRESS = Table(
    name="progress",
    columns=(
        ("group_id", "String"),
        ("collector_id", "String"),
        ("topic", "String"),
        ("partition", "UInt32"),
        # Next offset to read (everything below it is stored) and the partition's end offset.
        ("stored_offset", "UInt64"),
        ("end_offset", "UInt64"),
        # Every record of this partition that reached the broker before this time is stored:
        # the wall time when the collector was caught up, else the Kafka time of the last
        # stored record. The alerter measures silence against min(read_until).
        ("read_until", "DateTime64(3, 'UTC')"),
        ("updated_at", "DateTime64(3, 'UTC')"),
        # First offset this store collected of the partition: records before it were never
        # stored (before collector.start_from, or gone from Kafka by retention). 0 in rows
        # written before the column existed.
        ("start_offset", "UInt64"),
    ),
    engine="ReplacingMergeTree(updated_at)",
    order_by="(group_id, topic, partition)",
    sharding_key="cityHash64(topic)",
)

# Saga state, derived by ClickHouse from `messages` through SAGA_STATE_VIEW (never written by
# Python). Every column is a simple aggregate, so `SELECT ... FROM saga_state FINAL` gives one
# merged row per saga cheaply (see queries/state.py).
SAGA_STATE = Table(
    name="saga_state",
    columns=(
        ("saga_id", "String"),
        ("saga_type", "SimpleAggregateFunction(max, LowCardinality(String))"),
        ("message_count", "SimpleAggregateFunction(sum, UInt64)"),
        # The message heard first (by Kafka time, then event time): (Kafka time, event time).
        # A saga runs from its first message's event time to its last one's (last_message):
        # min/max of event time would let a service whose clock is behind stretch it.
        (
            "first_message",
            "SimpleAggregateFunction(min, Tuple(DateTime64(3, 'UTC'), DateTime64(3, 'UTC')))",
        ),
        # The message heard last (by Kafka time, then event time): (Kafka time, event time,
        # step, type, kind, source). Its Kafka time is the saga's last_kafka_time.
        (
            "last_message",
            "SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), DateTime64(3, 'UTC'), "
            "String, String, String, String))",
        ),
        # The latest ce_sagastatus marker: (Kafka time, rank, status); rank breaks ties.
        (
            "status_mark",
            "SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), UInt8, String))",
        ),
        # Every message as (event ms, Kafka ms, offset, id hash, type hash, step hash or 0):
        # the saga's path, so process maps and variants read one row per saga instead of every
        # message (names are hashed: `activity_hash` below).
        (
            "path",
            "SimpleAggregateFunction(groupArrayArray, "
            "Array(Tuple(Int64, Int64, UInt64, UInt32, UInt32, UInt32)))",
        ),
    ),
    engine="AggregatingMergeTree",
    order_by="(saga_id)",
    sharding_key="cityHash64(saga_id)",
    # One saga's state (a flow's status) merges a whole granule under FINAL: keep it small.
    layout=f"index_granularity = {GRANULE_ROWS}",
)

# Acknowledgements and silences of alert groups (saga type, step), written by the dashboard:
# who did what, when, until when a silence lasts, and why. Every row is kept (the history);
# the latest row per group is its handling. (Stores created before 2026-12-07 replace rows
# per group, so they keep no history from before.)
ALERT_ACKS = Table(
    name="alert_acks",
    columns=(
        ("saga_type", "LowCardinality(String)"),
        ("step", "LowCardinality(String)"),
        # acknowledged | silenced | cleared
        ("action", "LowCardinality(String)"),
        ("by", "String"),
        ("at", "DateTime64(3, 'UTC')"),
        ("until", "Nullable(DateTime64(3, 'UTC'))"),
        ("note", "String"),
    ),
    engine="MergeTree",
    order_by="(saga_type, step, at)",
    sharding_key="cityHash64(saga_type, step)",
)

TABLES: tuple[Table, ...] = (MESSAGES, SPANS, ALERTS, PROGRESS, SAGA_STATE, ALERT_ACKS)

#: Name of the materialized view feeding SAGA_STATE from MESSAGES.
SAGA_STATE_VIEW = "saga_state_mv"

def activity_hash(expr: str) -> str:
    """SQL of the UInt32 a message type or step name is stored as in ``saga_state.path``."""
    return f"toUInt32(cityHash64(toString({expr})) % 4294967291)"


#: Rank of each ce_sagastatus value when two carry the same Kafka millisecond.
STATUS_RANK = "['compensating', 'failed', 'completed', 'compensated']"

_SAGA_STATE_SELECT = (
    "SELECT saga_id, max(saga_type) AS saga_type, "
    "toUInt64(count()) AS message_count, "
    "min(tuple(kafka_time, event_time)) AS first_message, "
    "max(tuple(kafka_time, event_time, toString(step), toString(type), toString(kind), "
    "toString(source))) AS last_message, "
    "max(if(saga_status IN ('completed', 'failed', 'compensating', 'compensated'), "
    f"tuple(kafka_time, toUInt8(indexOf({STATUS_RANK}, toString(saga_status))), "
    "toString(saga_status)), tuple(toDateTime64(0, 3, 'UTC'), toUInt8(0), ''))) AS status_mark, "
    "groupArray(tuple(toUnixTimestamp64Milli(event_time), toUnixTimestamp64Milli(kafka_time), "
    "offset, toUInt32(if(message_id != '', cityHash64(message_id), "
    "cityHash64(topic, partition, offset)) % 4294967291), "
    f"{activity_hash('type')}, if(step = '', toUInt32(0), {activity_hash('step')}))) "
    "AS path "
    "FROM {source} WHERE saga_id != '' GROUP BY saga_id"
)


def view_statements(database: str, cluster: str = "") -> list[str]:
    """DDL of the materialized views deriving state from ``messages``, idempotently."""
    db = check_identifier(database)
    on_cluster = f" ON CLUSTER {check_identifier(cluster)}" if cluster else ""
    suffix = "_local" if cluster else ""
    select = _SAGA_STATE_SELECT.format(source=f"{db}.{MESSAGES.name}{suffix}")
    return [
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{SAGA_STATE_VIEW}{on_cluster} "
        f"TO {db}.{SAGA_STATE.name}{suffix} AS {select}"
    ]


def _ensure_views(store: Store, cluster: str) -> None:
    """Create the saga-state view; rebuild view and state when an older layout is found."""
    db = store.database
    suffix = "_local" if cluster else ""
    on_cluster = f" ON CLUSTER {check_identifier(cluster)}" if cluster else ""
    view = store.query(
        "SELECT as_select FROM system.tables WHERE database = {db:String} AND name = {name:String}",
        {"db": db, "name": SAGA_STATE_VIEW},
    ).rows
    types = dict(
        store.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} "
            "AND table = {table:String}",
            {"db": db, "table": SAGA_STATE.name + suffix},
        ).rows
    )
    current_view = bool(view) and all(f" AS {name}" in view[0][0] for name, _ in SAGA_STATE.columns[1:])
    current_table = all(
        types.get(name, "").replace(" ", "") == ctype.replace(" ", "")
        for name, ctype in SAGA_STATE.columns
    ) and len(types) == len(SAGA_STATE.columns)
    rebuild = not (current_view and current_table)
    if rebuild:
        # Derived data only: drop it and derive it again from `messages`.
        store.command(f"DROP VIEW IF EXISTS {db}.{SAGA_STATE_VIEW}{on_cluster}")
        if not current_table:
            store.command(f"DROP TABLE IF EXISTS {db}.{SAGA_STATE.name}{suffix}{on_cluster}")
            for statement in schema_statements(db, cluster):
                if f".{SAGA_STATE.name}" in statement.split("(")[0]:
                    store.command(statement)
        else:
            store.command(f"TRUNCATE TABLE IF EXISTS {db}.{SAGA_STATE.name}{suffix}{on_cluster}")
    for statement in view_statements(db, cluster):
        store.command(statement)
    if rebuild:
        # A view sees only new inserts: derive the state of rows stored before it existed.
        # (A row inserted during this backfill may be counted twice in message_count.)
        select = _SAGA_STATE_SELECT.format(source=f"{db}.{MESSAGES.name}{suffix}")
        if store.query(f"SELECT count() FROM {db}.{MESSAGES.name}{suffix}").scalar():
            store.command(f"INSERT INTO {db}.{SAGA_STATE.name}{suffix} {select}")


def _replicated(engine: str) -> str:
    name, _, args = engine.partition("(")
    args = args.rstrip(")")
    zk = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
    return f"Replicated{name}({zk}{', ' + args if args else ''})"


def schema_statements(database: str, cluster: str = "") -> list[str]:
    """DDL that creates every table, idempotently."""
    db = check_identifier(database)
    on_cluster = f" ON CLUSTER {check_identifier(cluster)}" if cluster else ""
    statements: list[str] = []
    for table in TABLES:
        cols = ", ".join(f"`{name}` {ctype}" for name, ctype in table.columns)
        body = cols + (f", {table.extra}" if table.extra else "")
        local = f"{table.name}_local" if cluster else table.name
        engine = _replicated(table.engine) if cluster else table.engine
        settings = ", ".join(x for x in (table.layout, "" if cluster else table.settings) if x)
        settings = f" SETTINGS {settings}" if settings else ""
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {db}.{local}{on_cluster} ({body}) "
            f"ENGINE = {engine} ORDER BY {table.order_by}{settings}"
        )
        if cluster:
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {db}.{table.name}{on_cluster} AS {db}.{local} "
                f"ENGINE = Distributed({cluster}, {db}, {local}, {table.sharding_key})"
            )
    return statements


def ensure_schema(store: Store, cluster: str = "") -> None:
    """Create or migrate the schema in the store's database. Safe to run at every start."""
    for statement in schema_statements(store.database, cluster):
        store.command(statement)
    existing = store.query(
        "SELECT table, name FROM system.columns WHERE database = {db:String}",
        {"db": store.database},
    )
    have = set(existing.rows)
    db = store.database
    on_cluster = f" ON CLUSTER {check_identifier(cluster)}" if cluster else ""
    for table in TABLES:
        targets = [f"{table.name}_local", table.name] if cluster else [table.name]
        for target in targets:
            for name, ctype in table.columns:
                if (target, name) not in have:
                    store.command(
                        f"ALTER TABLE {db}.{target}{on_cluster} "
                        f"ADD COLUMN IF NOT EXISTS `{name}` {ctype}"
                    )
    if store.backend == "chdb":
        from sagascope.store.chdb import TABLE_SETTINGS

        for table in TABLES:
            store.command(f"ALTER TABLE {db}.{table.name} MODIFY SETTING {TABLE_SETTINGS}")
    _ensure_views(store, cluster)
