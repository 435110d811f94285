"""The collector side: Kafka to ClickHouse, the store and its schema, flow queries, the alerter."""

from sagascope.collector._audit import AuditReport, PartitionAudit, verify
from sagascope.collector._consumer import Collector
from sagascope.collector._correlate import RuleError
from sagascope.collector._metrics import CollectorMetrics
from sagascope.collector._schema import ensure_schema
from sagascope.collector._store import ChdbStore, ClickHouseStore, QueryResult, Store, open_store
from sagascope.collector.exceptions import (
    CollectorError,
    NotFound,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "AuditReport",
    "ChdbStore",
    "ClickHouseStore",
    "Collector",
    "CollectorError",
    "CollectorMetrics",
    "NotFound",
    "PartitionAudit",
    "QueryResult",
    "RuleError",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "ensure_schema",
    "open_store",
    "verify",
]
