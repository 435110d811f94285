"""The one way to talk to ClickHouse: embedded chDB or a server, one schema, one SQL, the audit chain.

    from sagascope.store import open_store, ensure_schema, verify

    store = open_store(url="", path=".sagascope/store")   # embedded chDB; a URL for a server
    ensure_schema(store)
    report = verify(store)                                 # offsets contiguous, chain intact
"""

from sagascope.store.audit import AuditReport, PartitionAudit, verify
from sagascope.store.base import QueryResult, Store, StoreReader
from sagascope.store.chdb import ChdbStore
from sagascope.store.exceptions import StoreError, StoreHeld, StoreUnavailable
from sagascope.store.open import open_store, open_store_from_settings, store_owner
from sagascope.store.owner import OwnerRecord, StoreOwner, StoreThroughOwner, read_owner
from sagascope.store.schema import ensure_schema
from sagascope.store.server import ClickHouseStore

__all__ = [
    "AuditReport",
    "ChdbStore",
    "ClickHouseStore",
    "OwnerRecord",
    "PartitionAudit",
    "QueryResult",
    "Store",
    "StoreError",
    "StoreHeld",
    "StoreOwner",
    "StoreReader",
    "StoreThroughOwner",
    "StoreUnavailable",
    "ensure_schema",
    "open_store",
    "open_store_from_settings",
    "read_owner",
    "store_owner",
    "verify",
]
