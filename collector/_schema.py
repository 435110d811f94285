"""The store's schema: created and migrated idempotently, the same on chDB and on a server.

Table names (``messages``, ``spans``, ``alerts``) are part of the contract; columns may grow
(add them to the table's column list here and they are added with ``ADD COLUMN IF NOT EXISTS``).
With a cluster name set, each table is a ``Replicated*MergeTree`` named ``<table>_local`` on
every node plus a ``Distributed`` table under the contract name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sagascope.collector._store import Store, check_identifier

#: How many recent insert tokens a table remembers for replayed-batch deduplication.
DEDUP_WINDOW = 10000


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]
    engine: str
    order_by: str
    extra: str = ""
    settings: str = f"non_replicated_deduplication_window = {DEDUP_WINDOW}"
    sharding_key: str = "rand()"

    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


MESSAGES = Table(
    name="messages",
    columns=(
        ("topic", "LowCardinality(String)"),
        ("partition", "UInt32"),
        ("offset", "UInt64"),
        ("kafka_time", "DateTime64(3, 'UTC')"),
        # ce_time, a correlation rule's time, or else the Kafka timestamp.
        ("event_time", "DateTime64(3, 'UTC')"),
        ("ingest_time", "DateTime64(3, 'UTC')"),
        ("kafka_key", "String"),
        ("trace_id", "String"),
        ("span_id", "String"),
        ("saga_id", "String"),
        ("saga_type", "LowCardinality(String)"),
        ("message_id", "String"),
        ("causation_id", "String"),
        ("kind", "LowCardinality(String)"),
        ("type", "LowCardinality(String)"),
        ("source", "LowCardinality(String)"),
        ("step", "LowCardinality(String)"),
        ("saga_status", "LowCardinality(String)"),
        ("compensates", "LowCardinality(String)"),
        ("headers", "Map(String, String)"),
        # Redacted and capped; the size and SHA-256 are of the payload as received.
        ("payload", "String CODEC(ZSTD(3))"),
        ("payload_size", "UInt32"),
        ("payload_sha256", "FixedString(64)"),
        ("payload_truncated", "Bool"),
        # headers | traceparent | rule:<topic regex> | key | none
        ("correlation", "LowCardinality(String)"),
        ("parse_error", "String"),
        # Per partition: sha256(previous chain_hash || this row's digest); see _audit.py.
        ("chain_hash", "FixedString(64)"),
    ),
    engine="MergeTree",
    order_by="(saga_id, event_time, topic, partition, offset)",
    extra=(
        "INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4, "
        "INDEX idx_message_id message_id TYPE bloom_filter(0.01) GRANULARITY 4"
    ),
    sharding_key="cityHash64(saga_id)",
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
    ),
    engine="ReplacingMergeTree(updated_at)",
    order_by="(group_id, topic, partition)",
    sharding_key="cityHash64(topic)",
)

TABLES: tuple[Table, ...] = (MESSAGES, SPANS, ALERTS, PROGRESS)


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
        settings = "" if cluster else f" SETTINGS {table.settings}"
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
