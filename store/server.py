"""A ClickHouse server (or cluster) through clickhouse-connect over HTTP(S)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from sagascope.store.base import QueryResult, Store, _arrow_to_result, _query_settings, check_identifier
from sagascope.store.exceptions import StoreError, StoreUnavailable
from sagascope.store.params import server_parameters


class ClickHouseStore(Store):
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


def _map_error(exc: Exception) -> StoreError:
    name = type(exc).__name__
    if name in ("OperationalError",) or isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return StoreUnavailable(f"ClickHouse unavailable: {exc}")
    return StoreError(f"ClickHouse error: {exc}")
