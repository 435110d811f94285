"""The collector: Kafka to the store, nothing else (consume, decode, batch, insert, then commit).

Store, audit and error names that used to live here are re-exported for one release; import
them from ``sagascope.store`` (and ``NotFound`` from ``sagascope.queries``).
"""

from typing import Any

from sagascope.collector.consumer import Collector
from sagascope.collector.exceptions import CollectorError, RuleError
from sagascope.collector.metrics import CollectorMetrics
from sagascope.store import (
    AuditReport,
    ChdbStore,
    ClickHouseStore,
    PartitionAudit,
    QueryResult,
    Store,
    StoreError,
    StoreUnavailable,
    ensure_schema,
    open_store,
    verify,
)

__all__ = [
    "AuditReport",
    "ChdbStore",
    "ClickHouseStore",
    "Collector",
    "CollectorError",
    "CollectorMetrics",
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


def __getattr__(name: str) -> Any:
    # Deprecated alias: NotFound moved to the query layer, which the collector must not import
    # eagerly (it would load the read side into every collector process, and vice versa).
    if name == "NotFound":
        from sagascope.queries import NotFound

        return NotFound
    raise AttributeError(f"module 'sagascope.collector' has no attribute {name!r}")
