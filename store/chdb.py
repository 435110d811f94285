"""Embedded ClickHouse (chDB): one data directory per process, shared by every store in it."""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sagascope.store.allocator import configure_allocators
from sagascope.store.base import (
    Store,
    _quote,
    _with_settings,
    check_identifier,
)
from sagascope.store.exceptions import StoreError
from sagascope.store.params import chdb_parameters
from sagascope.store.results import RESULT_FORMAT

log = logging.getLogger(__name__)


#: Default of ``store.chdb_cache_mb``.
DEFAULT_CACHE_MB = 64

#: MergeTree settings of the embedded store's tables, for the memory of the process that
#: holds it. Outdated parts (chDB keeps none; merges make hundreds a minute at a few hundred
#: rows a second) are removed by the table's cleanup thread, not by a burst of up to 128
#: threads: chDB's global pool keeps every thread a burst started (it ignores
#: ``max_thread_pool_free_size``), ~130 idle threads after the first cleanup. Merges are
#: vertical (one column at a time after the sorting key) whatever the parts' size: a
#: horizontal merge of six small ``spans`` parts held 130-175 MB, a vertical one a few MB.
#: A merge reads and writes blocks of at most 1,024 rows or 2 MB (ClickHouse's 8,192 rows or
#: 10 MB): ``serve`` at 20 sagas/s peaked at 217 MB of anonymous memory, 257 MB with the defaults.
TABLE_SETTINGS = (
    "concurrent_part_removal_threshold = 1000000000, "
    "vertical_merge_algorithm_min_rows_to_activate = 1, "
    "vertical_merge_algorithm_min_bytes_to_activate = 0, "
    "vertical_merge_algorithm_min_columns_to_activate = 1, "
    "merge_max_block_size = 1024, "
    "merge_max_block_size_bytes = 2097152"
)


def cache_limits(cache_mb: int) -> dict[str, int]:
    """chDB's cache sizes (bytes) within ``cache_mb``: ClickHouse's defaults are sized for a
    server (5 GiB mark and primary-index caches), and an embedded store keeps whatever it
    cached for the life of the process. Uncompressed-block caches stay off, as in ClickHouse."""
    budget = max(cache_mb, 1) * 1024 * 1024
    return {
        "mark_cache_size": budget // 2,
        "primary_index_cache_size": budget // 4,
        "query_condition_cache_size": budget // 8,
        "index_mark_cache_size": budget // 16,
        "compiled_expression_cache_size": budget // 16,
        "uncompressed_cache_size": 0,
        "index_uncompressed_cache_size": 0,
        "page_cache_max_size": 0,
    }


@dataclass(frozen=True)
class ChdbLimits:
    """What the embedded store may hold (``store.chdb_cache_mb``, ``store.chdb_memory_limit_mb``);
    applies when this process opens the directory first."""

    #: Memory chDB's caches may hold together (see :func:`cache_limits`).
    cache_mb: int = DEFAULT_CACHE_MB
    #: chDB's total memory limit (queries and inserts beyond it fail); 0: chDB's own (90 % of
    #: the machine's memory).
    memory_limit_mb: int = 0

    def startup_options(self) -> str:
        """chDB's server settings, as its connection string takes them (``?name=value&...``)."""
        options = cache_limits(self.cache_mb)
        if self.memory_limit_mb > 0:
            options["max_server_memory_usage"] = self.memory_limit_mb * 1024 * 1024
        return "?" + "&".join(f"{name}={value}" for name, value in options.items())


class ChdbStore(Store):
    """Embedded ClickHouse (chDB). A process holds one data directory; stores share its session."""

    backend = "chdb"

    _sessions: ClassVar[dict[str, Any]] = {}
    _lock = threading.RLock()
    _current_db: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        path: str,
        database: str = "sagascope",
        *,
        read_only: bool = False,
        limits: ChdbLimits | None = None,
    ) -> None:
        """Open (or share) the process's chDB session on ``path``, within ``limits`` (default
        :class:`ChdbLimits`)."""
        configure_allocators()
        chdb_session = _chdb_session_module()

        self.path = path
        self.database = check_identifier(database)
        self.read_only = read_only
        with ChdbStore._lock:
            sess = ChdbStore._sessions.get(path)
            if sess is None:
                if ChdbStore._sessions:
                    other = next(iter(ChdbStore._sessions))
                    raise StoreError(
                        f"this process already holds the chDB directory {other}; "
                        f"a process can open one directory only (asked for {path})"
                    )
                try:
                    sess = chdb_session.Session(path + (limits or ChdbLimits()).startup_options())
                except Exception as exc:  # chDB raises bare RuntimeErrors
                    raise StoreError(f"cannot open chDB directory {path}: {exc}") from exc
                if not ChdbStore._sessions:
                    atexit.register(_close_chdb_sessions)
                ChdbStore._sessions[path] = sess
            self._session = sess
            self._run(f"CREATE DATABASE IF NOT EXISTS {self.database}", None, "CSV", use_db=False)

    def _run(
        self, sql: str, params: Mapping[str, Any] | None, fmt: str, *, use_db: bool = True
    ) -> Any:
        with ChdbStore._lock:
            try:
                if use_db and ChdbStore._current_db.get(self.path) != self.database:
                    self._session.query(f"USE {self.database}")
                    ChdbStore._current_db[self.path] = self.database
                return self._session.query(sql, fmt, params=chdb_parameters(params))
            except Exception as exc:
                raise StoreError(f"query failed: {exc}") from exc

    def _result_query(
        self, sql: str, params: Mapping[str, Any] | None, settings: Mapping[str, Any]
    ) -> bytes:
        result: bytes = self._run(_with_settings(sql, settings), params, RESULT_FORMAT).bytes()
        return result

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._check_writable()
        self._run(sql, params, "CSV")

    def insert_encoded(
        self, table: str, columns: Sequence[str], data: bytes, *, dedup_token: str | None = None
    ) -> None:
        self._check_writable()
        for column in columns:
            check_identifier(column)
        settings = "SETTINGS date_time_input_format='best_effort'"
        if dedup_token is not None:
            settings += f", insert_deduplication_token='{_quote(dedup_token)}'"
        sql = f"INSERT INTO {check_identifier(table)} ({', '.join(columns)}) {settings}"
        with ChdbStore._lock:
            try:
                if ChdbStore._current_db.get(self.path) != self.database:
                    self._session.query(f"USE {self.database}")
                    ChdbStore._current_db[self.path] = self.database
                inserter = self._session.send_insert(sql, "JSONEachRow")
                inserter.append(data)
                inserter.finish()
            except Exception as exc:
                raise StoreError(f"insert into {table} failed: {exc}") from exc

    def execute(
        self,
        sql: str,
        fmt: str,
        params: Mapping[str, str] | None = None,
        *,
        database: str | None = None,
    ) -> bytes:
        """Run ``sql`` as it is (settings included) in ``database``; the output in ``fmt``.

        For the read server (``store.serving``), which answers in the format the client named;
        ``params`` are already in the text form of ClickHouse's ``param_<name>``.
        """
        with ChdbStore._lock:
            self._use(database or self.database)
            try:
                result = self._session.query(sql, fmt, params=dict(params) if params else None)
            except Exception as exc:
                raise StoreError(f"query failed: {exc}") from exc
            return bytes(result.bytes()) if result is not None else b""

    def insert_formatted(
        self, sql: str, fmt: str, data: bytes, *, database: str | None = None
    ) -> None:
        """``INSERT INTO ...`` (without its FORMAT clause) of ``data`` in ``fmt``."""
        self._check_writable()
        with ChdbStore._lock:
            self._use(database or self.database)
            try:
                inserter = self._session.send_insert(sql, fmt)
                inserter.append(data)
                inserter.finish()
            except Exception as exc:
                raise StoreError(f"query failed: {exc}") from exc

    def _use(self, database: str) -> None:
        """Make ``database`` the session's current one (the caller holds the lock)."""
        if ChdbStore._current_db.get(self.path) != database:
            try:
                self._session.query(f"USE {check_identifier(database)}")
            except Exception as exc:
                raise StoreError(f"query failed: {exc}") from exc
            ChdbStore._current_db[self.path] = database

    def close(self) -> None:
        """Sessions stay open for the life of the process (chDB cannot reopen another path)."""


def _chdb_session_module() -> Any:
    """chDB's session module, imported without pyarrow unless this process has it already.

    chDB imports pyarrow whenever it is installed, for its Arrow and DataFrame outputs alone
    (it works without: pyarrow is optional to it); the store reads ``JSONCompact``. Hidden
    only while chDB loads, so a dashboard session that draws a table still imports it.
    """
    if "pyarrow" in sys.modules or "chdb.session" in sys.modules:
        from chdb import session

        return session
    sys.modules["pyarrow"] = None  # type: ignore[assignment]  # import pyarrow -> ImportError
    try:
        from chdb import session

        return session
    finally:
        sys.modules.pop("pyarrow", None)


def _close_chdb_sessions() -> None:
    """Close chDB sessions before the interpreter tears down: chDB's own global shutdown at
    process exit was seen to crash (SIGSEGV) when a session was still open."""
    if not ChdbStore._lock.acquire(timeout=10):
        return  # a query hangs; leave the session to chDB's own shutdown
    try:
        for sess in ChdbStore._sessions.values():
            try:
                sess.close()
            except Exception:  # exiting anyway
                log.debug("closing a chDB session at exit failed", exc_info=True)
        ChdbStore._sessions.clear()
        ChdbStore._current_db.clear()
    finally:
        ChdbStore._lock.release()
