"""Opening the store the settings name."""

from __future__ import annotations

import os

from sagascope.store.base import Store
from sagascope.store.chdb import ChdbStore
from sagascope.store.server import ClickHouseStore


def open_store(
    url: str = "",
    path: str = ".sagascope/store",
    database: str = "sagascope",
    *,
    read_only: bool = False,
) -> Store:
    """The store the settings name: a server when ``url`` is set, else embedded chDB at ``path``."""
    if url:
        return ClickHouseStore(url, database, read_only=read_only)
    os.makedirs(path, exist_ok=True)
    return ChdbStore(path, database, read_only=read_only)
