"""A ClickHouse server (or cluster) through clickhouse-connect over HTTP(S)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from sagascope.store.base import Store, check_identifier
from sagascope.store.exceptions import StoreError, StoreUnavailable
from sagascope.store.params import server_parameters
from sagascope.store.results import RESULT_FORMAT


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
        username: str = "",
        password: str = "",
        ca_file: str = "",
        verify_tls: bool = True,
    ) -> None:
        """Connect; ``username``/``password`` override the URL's (keep secrets out of URLs).

        Args:
            ca_file: PEM CA file for ``https://`` servers with a private CA.
            verify_tls: verify the server's certificate (``https://``).
        """
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
        secure = parsed.scheme == "https"
        tls: dict[str, Any] = {"verify": verify_tls} if secure else {}
        if secure and ca_file:
            tls["ca_cert"] = ca_file
        try:
            admin = clickhouse_connect.get_client(
                host=parsed.hostname or "localhost",
                port=parsed.port or (8443 if secure else 8123),
                username=username or unquote(parsed.username or "default"),
                password=password or unquote(parsed.password or ""),
                secure=secure,
                connect_timeout=int(query.get("connect_timeout", 10)),
                **tls,
            )
            if not read_only:
                admin.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            admin.database = self.database
        except Exception as exc:
            # The URL and the driver's message may carry a password: name only host and port
            # and what kind of failure it was. ``from None``: a traceback would show the cause.
            raise StoreUnavailable(
                f"cannot reach ClickHouse at {parsed.hostname}:{parsed.port}: "
                f"{type(exc).__name__}{_connect_hint(exc, secure)}"
            ) from None
        self._client = admin

    def _result_query(
        self, sql: str, params: Mapping[str, Any] | None, settings: Mapping[str, Any]
    ) -> bytes:
        try:
            with self._lock:
                data: bytes = self._client.raw_query(
                    sql,
                    parameters=server_parameters(params),
                    settings=dict(settings),
                    fmt=RESULT_FORMAT,
                )
        except Exception as exc:
            raise _map_error(exc) from exc
        return data

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


def _connect_hint(exc: Exception, secure: bool) -> str:
    text = str(exc)
    if secure and ("CERTIFICATE_VERIFY_FAILED" in text or "SSLCertVerificationError" in text):
        return " (TLS certificate not trusted: set store.ca_file to the CA that signed it)"
    if "SSL" in text and not secure:
        return ""
    if "SSL" in text:
        return " (TLS handshake failed: is it an https:// port? check store.url and store.ca_file)"
    if "Authentication failed" in text or "AUTHENTICATION_FAILED" in text or " 516" in text:
        return " (authentication failed: check store.username and store.password / store.password_file)"
    return ""


def _map_error(exc: Exception) -> StoreError:
    name = type(exc).__name__
    if name in ("OperationalError",) or isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return StoreUnavailable(f"ClickHouse unavailable: {exc}")
    return StoreError(f"ClickHouse error: {exc}")
