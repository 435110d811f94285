"""Opening the store the settings name."""

from __future__ import annotations

import os

from sagascope.store.base import Store
from sagascope.store.chdb import DEFAULT_CACHE_MB, ChdbStore
from sagascope.store.server import ClickHouseStore

from sagascope.exceptions import ConfigError
from sagascope.settings import StoreSettings, secret


def open_store(
    url: str = "",
    path: str = ".sagascope/store",
    database: str = "sagascope",
    *,
    read_only: bool = False,
    username: str = "",
    password: str = "",
    ca_file: str = "",
    verify_tls: bool = True,
    chdb_cache_mb: int = DEFAULT_CACHE_MB,
    chdb_memory_limit_mb: int = 0,
) -> Store:
    """The store the settings name: a server when ``url`` is set, else embedded chDB at ``path``."""
    if url:
        return ClickHouseStore(
            url, database, read_only=read_only, username=username, password=password,
            ca_file=ca_file, verify_tls=verify_tls,
        )
    os.makedirs(path, exist_ok=True)
    return ChdbStore(
        path, database, read_only=read_only, cache_mb=chdb_cache_mb,
        memory_limit_mb=chdb_memory_limit_mb,
    )


def open_store_from_settings(cfg: StoreSettings, *, read_only: bool = False) -> Store:
    """The store ``[store]`` names, with its user, password (or password file) and CA file."""
    if cfg.chdb_cache_mb < 1:
        raise ConfigError("setting store.chdb_cache_mb must be at least 1")
    if cfg.chdb_memory_limit_mb < 0:
        raise ConfigError("setting store.chdb_memory_limit_mb must be 0 (chDB's own) or more")
    return open_store(
        cfg.url, cfg.path, cfg.database, read_only=read_only, username=cfg.username,
        password=secret(cfg, "password", "store"), ca_file=cfg.ca_file, verify_tls=cfg.verify_tls,
        chdb_cache_mb=cfg.chdb_cache_mb, chdb_memory_limit_mb=cfg.chdb_memory_limit_mb,
    )
