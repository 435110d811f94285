"""The store: ClickHouse through one interface, embedded (chDB) or a server (clickhouse-connect).

Both backends run the same SQL text with server-side parameters (``{name:Type}``), return
results decoded from the same Arrow stream, and insert rows as the same JSONEachRow bytes,
so there is one schema, one SQL and one type mapping.
"""

from __future__ import annotations

import atexit
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qs, unquote, urlparse

from sagascope.collector.exceptions import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier; identifiers cannot be parameters."""
    if not _IDENTIFIER.match(name):
        raise StoreError(f"invalid identifier {name!r} (letters, digits and _ only)")
    return name


@dataclass(frozen=True)
class QueryResult:
    """Rows of a query, typed from the Arrow stream both backends return."""

    column_names: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.column_names, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.column_names.index(name)
        return [row[i] for row in self.rows]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def __len__(self) -> int:
        return len(self.rows)


class Store(Protocol):
    """What every part uses to talk to ClickHouse. Implementations are thread-safe."""

    database: str
    #: ``chdb`` or ``server``
    backend: str
    read_only: bool

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        """Run a SELECT; ``settings`` are query-level ClickHouse settings (never in ``sql``)."""
        ...

    def query_df(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """The result as a pandas DataFrame (for the dashboard)."""
        ...

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    def insert(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        dedup_token: str | None = None,
    ) -> int:
        """Insert rows (dicts keyed by column); returns the number of rows sent."""
        ...

    def insert_encoded(
        self, table: str, columns: Sequence[str], data: bytes, *, dedup_token: str | None = None
    ) -> None:
        """Insert rows already encoded as JSONEachRow (``encode_rows``) into these columns;
        a row may leave columns out (they get their defaults)."""
        ...

    def close(self) -> None: ...


def encode_rows(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Rows as JSONEachRow bytes, the one insert encoding of both backends."""
    if _orjson is None:
        return b"".join(_encode_row_stdlib(row) for row in rows)
    dumps, option = _orjson.dumps, _ORJSON_OPTIONS
    # Appended to one buffer as they come: each row's bytes are freed at once, whereas
    # keeping thousands alive for a join was measured 3-4x slower (allocator churn).
    out = bytearray()
    for row in rows:
        try:
            out += dumps(row, default=_json_default, option=option)
        except TypeError:  # orjson refuses lone surrogates and huge ints; keep the row anyway
            out += _encode_row_stdlib(row)
    return bytes(out)


def _encode_row_stdlib(row: Mapping[str, Any]) -> bytes:
    text = json.dumps(row, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    return (text + "\n").encode("utf-8", errors="replace")


try:  # 20x faster than json on rows like ours; the stdlib is the fallback
    import orjson as _orjson

    _ORJSON_OPTIONS = _orjson.OPT_APPEND_NEWLINE | _orjson.OPT_PASSTHROUGH_DATETIME
except ImportError:  # pragma: no cover - orjson comes with the collector extra
    _orjson = None  # type: ignore[assignment]
    _ORJSON_OPTIONS = 0


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        # DateTime64 columns take fractional epoch seconds with best_effort parsing off.
        return value.timestamp()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__}")


def _arrow_to_result(data: bytes) -> QueryResult:
    import pyarrow as pa

    if not data:
        return QueryResult((), [])
    table = pa.ipc.open_stream(data).read_all()
    columns = [_arrow_column(table.column(i)) for i in range(table.num_columns)]
    return QueryResult(tuple(table.column_names), list(zip(*columns, strict=True)))


def _arrow_column(col: Any) -> list[Any]:
    import pyarrow as pa

    values = col.to_pylist()
    if pa.types.is_binary(col.type) or pa.types.is_fixed_size_binary(col.type):
        # ClickHouse String goes out as Arrow binary unless told otherwise.
        return [v.decode("utf-8", errors="replace") if v is not None else None for v in values]
    if pa.types.is_map(col.type):
        return [dict(v) if v is not None else None for v in values]
    return values


_ARROW_SETTINGS = {
    "output_format_arrow_string_as_string": 1,
    "output_format_arrow_low_cardinality_as_dictionary": 0,
}

# readonly=2: no writes, but query-level settings (the Arrow ones) may still be set.
_READ_ONLY_SETTINGS = {**_ARROW_SETTINGS, "readonly": 2}


class _StoreBase:
    """What both backends share: the DataFrame view of a query, row inserts as encoded ones,
    and the read-only guard."""

    read_only: bool

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        raise NotImplementedError

    def query_df(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        import pandas as pd

        res = self.query(sql, params)
        return pd.DataFrame(res.rows, columns=list(res.column_names))

    def insert(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        dedup_token: str | None = None,
    ) -> int:
        if not rows:
            return 0
        self.insert_encoded(table, list(rows[0]), encode_rows(rows), dedup_token=dedup_token)
        return len(rows)

    def insert_encoded(
        self, table: str, columns: Sequence[str], data: bytes, *, dedup_token: str | None = None
    ) -> None:
        raise NotImplementedError

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError("read-only store")


class ChdbStore(_StoreBase):
    """Embedded ClickHouse (chDB). A process holds one data directory; stores share its session."""

    backend = "chdb"

    _sessions: ClassVar[dict[str, Any]] = {}
    _lock = threading.RLock()
    _current_db: ClassVar[dict[str, str]] = {}

    def __init__(self, path: str, database: str = "sagascope", *, read_only: bool = False) -> None:
        from chdb import session as chdb_session

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
                    sess = chdb_session.Session(path)
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

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        merged = _query_settings(self.read_only, settings)
        result = self._run(_with_settings(sql, merged), params, "ArrowStream")
        return _arrow_to_result(result.bytes())

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

    def close(self) -> None:
        """Sessions stay open for the life of the process (chDB cannot reopen another path)."""


def _close_chdb_sessions() -> None:
    """Close chDB sessions before the interpreter tears down: chDB's own global shutdown at
    process exit was seen to crash (SIGSEGV) when a session was still open."""
    if not ChdbStore._lock.acquire(timeout=10):
        return  # a query is stuck; leave the session to chDB's own shutdown
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


class ClickHouseStore(_StoreBase):
    """A ClickHouse server through clickhouse-connect (HTTP)."""

    backend = "server"

    def __init__(
        self,
        url: str,
        database: str | None = None,
        *,
        read_only: bool = False,
        client: Any = None,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https", "clickhouse"):
            raise StoreError(
                f"store URL must be http(s)://user:pass@host:port/db, got scheme {parsed.scheme!r}"
            )
        path_db = parsed.path.strip("/") or None
        self.database = check_identifier(database or path_db or "sagascope")
        self.read_only = read_only
        self._lock = threading.Lock()
        if client is not None:
            self._client = client
            return
        import clickhouse_connect

        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        try:
            admin = clickhouse_connect.get_client(
                host=parsed.hostname or "localhost",
                port=parsed.port or (8443 if parsed.scheme == "https" else 8123),
                username=unquote(parsed.username or "default"),
                password=unquote(parsed.password or ""),
                secure=parsed.scheme == "https",
                connect_timeout=int(query.get("connect_timeout", 10)),
            )
            if not read_only:
                admin.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            admin.database = self.database
        except Exception as exc:
            # The URL may carry a password: name only host and port.
            raise StoreUnavailable(
                f"cannot reach ClickHouse at {parsed.hostname}:{parsed.port}: {type(exc).__name__}"
            ) from exc
        self._client = admin

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        merged = _query_settings(self.read_only, settings)
        try:
            with self._lock:
                data = self._client.raw_query(
                    sql,
                    parameters=server_parameters(params),
                    settings=merged,
                    fmt="ArrowStream",
                )
        except Exception as exc:
            raise _map_error(exc) from exc
        return _arrow_to_result(data)

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._check_writable()
        try:
            with self._lock:
                self._client.command(sql, parameters=server_parameters(params))
        except Exception as exc:
            raise _map_error(exc) from exc

    def insert_encoded(
        self, table: str, columns: Sequence[str], data: bytes, *, dedup_token: str | None = None
    ) -> None:
        self._check_writable()
        columns = [check_identifier(c) for c in columns]
        settings: dict[str, Any] = {"date_time_input_format": "best_effort"}
        if dedup_token is not None:
            settings["insert_deduplication_token"] = dedup_token
        try:
            with self._lock:
                self._client.raw_insert(
                    check_identifier(table),
                    column_names=columns,
                    insert_block=data,
                    settings=settings,
                    fmt="JSONEachRow",
                )
        except Exception as exc:
            raise _map_error(exc) from exc

    def close(self) -> None:
        self._client.close()


def server_parameters(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Parameters as clickhouse-connect sends them for ``{name:Type}`` server-side binding."""
    if not params:
        return None
    out: dict[str, Any] = {}
    for key, value in params.items():
        check_identifier(key)
        out[key] = value
    return out


def chdb_parameters(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Parameters for chDB, which takes scalars as they are but containers as ClickHouse text."""
    if not params:
        return None
    out: dict[str, Any] = {}
    for key, value in params.items():
        check_identifier(key)
        if isinstance(value, (list, tuple, set, frozenset, dict)):
            out[key] = _literal(value)
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, datetime):
            out[key] = _datetime_text(value)
        else:
            out[key] = value
    return out


def _datetime_text(value: datetime) -> str:
    """UTC text both DateTime64 and (for whole seconds) DateTime parameters accept."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(sep=" ", timespec="microseconds" if value.microsecond else "seconds")


def _literal(value: Any) -> str:
    """A value as a ClickHouse literal (the text form of arrays, maps and their elements)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, datetime):
        return f"'{_datetime_text(value)}'"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_literal(k)}:{_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "(" + ",".join(_literal(v) for v in value) + ")"
    if isinstance(value, (list, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return "[" + ",".join(_literal(v) for v in items) + "]"
    return f"'{_quote(str(value))}'"


def _map_error(exc: Exception) -> StoreError:
    name = type(exc).__name__
    if name in ("OperationalError",) or isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return StoreUnavailable(f"ClickHouse unavailable: {exc}")
    return StoreError(f"ClickHouse error: {exc}")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _query_settings(read_only: bool, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Arrow output settings (and readonly) every query needs, plus the caller's own."""
    base = _READ_ONLY_SETTINGS if read_only else _ARROW_SETTINGS
    if extra and "readonly" in extra:
        raise StoreError("the readonly setting belongs to the store, not to a query")
    return {**base, **(extra or {})}


def _with_settings(sql: str, settings: Mapping[str, Any]) -> str:
    if re.search(r"\bSETTINGS\b", sql, re.IGNORECASE):
        # A clause of the caller's would silently drop ours (readonly among them).
        raise StoreError("pass query settings through query(settings=...), not in the SQL")
    for key in settings:
        check_identifier(key)
    joined = ", ".join(
        f"{k}='{_quote(v)}'" if isinstance(v, str) else f"{k}={v}" for k, v in settings.items()
    )
    return f"{sql.rstrip().rstrip(';')}\nSETTINGS {joined}"


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
    import os

    os.makedirs(path, exist_ok=True)
    return ChdbStore(path, database, read_only=read_only)
