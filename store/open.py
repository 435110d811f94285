"""Opening the store the settings name, and finding the embedded store's owner.

A chDB data directory opens in one process only. ``open_store`` on an embedded store held by
another process that serves it (its owner, see :mod:`sagascope.store.owner`) connects to that
process instead: readers with its read token, writers with its alerts token (which inserts into
the alert tables only). With ``serve_reads`` the process that opens the directory becomes its
owner and serves the others.
"""

from __future__ import annotations

import os
import threading
import time

from sagascope.exceptions import ConfigError
from sagascope.settings import StoreSettings, secret
from sagascope.store.base import Store
from sagascope.store.chdb import ChdbLimits, ChdbStore
from sagascope.store.exceptions import StoreError, StoreHeld
from sagascope.store.owner import (
    StoreOwner,
    StoreThroughOwner,
    discard_owner_file,
    holder,
    read_owner,
)
from sagascope.store.server import ClickHouseStore

#: How long an opener that lost the race for the directory waits for its owner's file.
OWNER_FILE_WAIT_S = 5.0

_owners: dict[str, StoreOwner] = {}
_owners_lock = threading.Lock()


def open_store(
    url: str = "",
    path: str = ".sagascope/store",
    database: str = "sagascope",
    *,
    read_only: bool = False,
    serve_reads: bool = False,
    username: str = "",
    password: str = "",
    ca_file: str = "",
    verify_tls: bool = True,
    chdb: ChdbLimits | None = None,
) -> Store:
    """The store the settings name: a server when ``url`` is set, else embedded chDB at ``path``.

    Args:
        serve_reads: when this call opens the chDB directory, serve it to other processes
            (:func:`store_owner` has the address); ``serve``, ``collect``, ``demo``, ``alert``.
        chdb: what the embedded store may hold (default :class:`ChdbLimits`).

    Raises:
        StoreHeld: the directory is held by a process that does not serve it.
    """
    if url:
        return ClickHouseStore(
            url, database, read_only=read_only, username=username, password=password,
            ca_file=ca_file, verify_tls=verify_tls,
        )
    os.makedirs(path, exist_ok=True)
    owner = read_owner(path)
    if owner is not None and owner.pid != os.getpid():
        try:
            return StoreThroughOwner(owner, database, read_only=read_only)
        except StoreHeld:
            if holder(path) is not None:
                raise
            # Nobody holds the directory: the file's pid lives on in another process.
            discard_owner_file(path, owner)
    store = _open_chdb(path, database, read_only=read_only, limits=chdb or ChdbLimits())
    if isinstance(store, ChdbStore) and serve_reads:
        with _owners_lock:
            if path not in _owners:
                _owners[path] = StoreOwner(store)
    return store


def store_owner(path: str) -> StoreOwner | None:
    """This process's read server for the embedded store at ``path``, if it serves it."""
    with _owners_lock:
        return _owners.get(path)


def open_store_from_settings(
    cfg: StoreSettings, *, read_only: bool = False, serve_reads: bool = False
) -> Store:
    """The store ``[store]`` names, with its user, password (or password file) and CA file."""
    if cfg.chdb_cache_mb < 1:
        raise ConfigError("setting store.chdb_cache_mb must be at least 1")
    if cfg.chdb_memory_limit_mb < 0:
        raise ConfigError("setting store.chdb_memory_limit_mb must be 0 (chDB's own) or more")
    return open_store(
        cfg.url, cfg.path, cfg.database, read_only=read_only, serve_reads=serve_reads,
        username=cfg.username, password=secret(cfg, "password", "store"), ca_file=cfg.ca_file,
        verify_tls=cfg.verify_tls,
        chdb=ChdbLimits(cfg.chdb_cache_mb, cfg.chdb_memory_limit_mb),
    )


def _open_chdb(
    path: str, database: str, *, read_only: bool, limits: ChdbLimits
) -> Store:
    # Asked first, so a held directory does not cost chDB's own lock error on stderr.
    held_by = holder(path)
    if held_by is None:
        try:
            return ChdbStore(path, database, read_only=read_only, limits=limits)
        except StoreError as exc:
            opened_error = exc
        held_by = holder(path)
    if held_by is None:
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise StoreError(
                f"cannot open the store at {path}: no read and write permission on it "
                f"for this user (uid {os.getuid()}); run as its owner, or choose another "
                "--store-path"
            ) from None
        raise opened_error
    # A starting owner writes its file once its read server listens; a short-lived holder
    # (a `flow`) may be about to let go.
    deadline = time.monotonic() + OWNER_FILE_WAIT_S
    while time.monotonic() < deadline:
        owner = read_owner(path)
        if owner is not None:
            return StoreThroughOwner(owner, database, read_only=read_only)
        if holder(path) is None:
            return ChdbStore(path, database, read_only=read_only, limits=limits)
        time.sleep(0.1)
    pid, command = held_by
    raise StoreHeld(
        f"the store at {path} is held by pid {pid} ({command}), which does not serve it to "
        "other processes: wait for it to finish or stop it. To read while collecting, run "
        "'sagascope serve' or 'sagascope collect': they serve reads to every other command"
    ) from None
