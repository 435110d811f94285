"""The collector side: Kafka to ClickHouse, the store and its schema, flow queries, the alerter."""

from sagascope.collector._schema import ensure_schema
from sagascope.collector._store import ChdbStore, ClickHouseStore, QueryResult, Store, open_store
from sagascope.collector.exceptions import (
    CollectorError,
    NotFound,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "ChdbStore",
    "ClickHouseStore",
    "CollectorError",
    "NotFound",
    "QueryResult",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "ensure_schema",
    "open_store",
]
