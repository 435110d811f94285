"""ClickHouse's HTTP interface over this process's chDB session, on loopback.

A chDB data directory opens in one process only; the process that holds it serves every other
one through this: ``flow``, ``verify``, a second dashboard, clickhouse-connect, Grafana's
ClickHouse data source over HTTP. It speaks enough of the interface for clickhouse-connect:
the query from the URL and/or the body (also as ``multipart/form-data`` fields), ``param_<name>``
server-side parameters, ``database``, the output format the client names (``FORMAT Native``,
``ArrowStream`` ...), settings as URL parameters, insert data in the body, and errors as
HTTP 500 with ClickHouse's ``Code: N. DB::Exception`` text.

Every request carries a token (as the HTTP basic-auth password, the ``X-ClickHouse-Key``
header, or the ``password`` URL parameter, as ClickHouse accepts it), and the token's
:class:`Grant` decides what it may run: by default reads only, enforced here (the statement's
kind) and by chDB (``readonly=2`` on every statement).
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import hmac
import logging
import re
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from sagascope.store.chdb import ChdbStore

log = logging.getLogger(__name__)

#: What the read server binds to: this host only, never the network.
LOOPBACK = "127.0.0.1"

# URL parameters that steer the HTTP exchange, not the query.
_TRANSPORT = frozenset({
    "query",
    "database",
    "session_id",
    "session_timeout",
    "session_check",
    "query_id",
    "compress",
    "decompress",
    "wait_end_of_query",
    "send_progress_in_http_headers",
    "http_headers_progress_interval_ms",
    "enable_http_compression",
    "default_format",
    "quota_key",
    "user",
    "password",
    "role",
    "client_protocol_version",
})

# Statement kinds a read grant runs; anything else is refused before chDB sees it.
_READ_STATEMENT = re.compile(r"^\s*\(*\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.I)
_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.I)
# INSERT INTO [db.]table [(columns)] [SETTINGS ...] [FORMAT f]: the one insert shape a
# table grant allows (no INSERT ... SELECT, no table functions).
_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?:`?(?P<db>\w+)`?\s*\.\s*)?`?(?P<table>\w+)`?\s*"
    r"(?:\([^()]*\))?\s*(?:SETTINGS\s+[^()]*?)?\s*(?:FORMAT\s+\w+)?\s*$",
    re.I | re.S,
)
_CODE = re.compile(r"Code: (\d+)\.")

_AUTH_FAILED = (
    b"Code: 516. DB::Exception: Authentication failed: password is incorrect, "
    b"or there is no user with such name. (AUTHENTICATION_FAILED)"
)


@dataclass(frozen=True)
class Grant:
    """What a token may run: reads always; inserts into ``insert_tables``; or anything."""

    insert_tables: frozenset[str] = frozenset()
    #: every statement, unrestricted (a test's stand-in for a ClickHouse server's admin user)
    any_statement: bool = False


#: Reads only: SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN, run with ``readonly=2``.
READ_ONLY = Grant()


@dataclass
class HttpRequest:
    """One request as the interface sees it, after parsing."""

    method: str
    query: str
    params: dict[str, str]
    settings: dict[str, str]
    body: bytes
    grant: Grant = field(default=READ_ONLY)


class RequestRefused(Exception):
    """A request this server does not run; answered with ClickHouse's code and name for it
    (by default 164 READONLY: a statement the request's grant does not allow)."""

    def __init__(self, message: str, code: int = 164, name: str = "READONLY") -> None:
        super().__init__(message)
        self.code = code
        self.name = name

    def response(self) -> bytes:
        return f"Code: {self.code}. DB::Exception: {self}. ({self.name})".encode()


class ChdbHttpServer:
    """``with ChdbHttpServer(store, tokens={token: READ_ONLY}) as server: server.port``.

    Args:
        store: the chDB store whose session answers (its data directory is this process's).
        port: 0 picks a free one.
        tokens: token -> what it may run. Requests without a known token get HTTP 401,
            unless ``anonymous`` grants something.
        anonymous: the grant of a request without a token (None: refused).
    """

    def __init__(
        self,
        store: ChdbStore,
        port: int = 0,
        *,
        tokens: Mapping[str, Grant] | None = None,
        anonymous: Grant | None = None,
    ) -> None:
        self.store = store
        self.port = port
        self.tokens = dict(tokens or {})
        self.anonymous = anonymous
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> ChdbHttpServer:
        self._server = ThreadingHTTPServer((LOOPBACK, self.port), _make_handler(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(
            target=self._server.serve_forever, name="store-http", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> ChdbHttpServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def grant_of(self, token: str | None) -> Grant | None:
        """The grant of a request carrying ``token`` (None: refuse it)."""
        if token is not None:
            for known, grant in self.tokens.items():
                if hmac.compare_digest(token.encode(), known.encode()):
                    return grant
        return self.anonymous

    def run(self, request: HttpRequest) -> bytes:
        """Run one request in chDB, as its grant allows; the output in its format."""
        database = request.settings.get("database") or self.store.database
        settings = {k: v for k, v in request.settings.items() if k not in _TRANSPORT}
        query = request.query.strip().rstrip(";")
        grant = request.grant
        if request.settings.get("compress") == "1" or request.settings.get("decompress") == "1":
            # ClickHouse's own compressed framing; plain HTTP compression is merely not used.
            raise RequestRefused(
                "compress=1 and decompress=1 are not supported here: turn the client's "
                "compression off", code=1, name="UNSUPPORTED_METHOD",
            )
        inserting = request.method == "POST" and bool(request.body) and _is_insert(query)
        if not grant.any_statement:
            _check_allowed(query, grant, database, inserting)
            # After the client's own settings, so a readonly=0 of theirs is an error in chDB.
            settings.pop("readonly", None)
            settings["readonly"] = "2"
        if inserting:
            fmt = "TabSeparated"
            match = re.search(r"\bFORMAT\s+(\w+)\s*$", query, re.I)
            if match:
                fmt, query = match.group(1), query[: match.start()].rstrip()
            if not grant.any_statement:
                # readonly would refuse the insert itself; the grant allowed it above.
                settings.pop("readonly")
            self.store.insert_formatted(
                query + _settings_clause(settings), fmt, request.body, database=database
            )
            return b""
        fmt = request.settings.get("default_format", "TabSeparated")
        match = re.search(r"\sFORMAT\s+(\w+)\s*$", query, re.I)
        if match:
            fmt, query = match.group(1), query[: match.start()]
        return self.store.execute(
            query + _settings_clause(settings), fmt, request.params or None, database=database
        )


def _check_allowed(query: str, grant: Grant, database: str, inserting: bool) -> None:
    if inserting:
        match = _INSERT.match(query)
        if (
            match is None
            or match.group("table") not in grant.insert_tables
            or (match.group("db") or database) != database
        ):
            raise RequestRefused("this token may insert only into " + (
                ", ".join(sorted(grant.insert_tables)) or "no table"
            ))
        return
    if not _READ_STATEMENT.match(query):
        raise RequestRefused("this token may only read (SELECT, SHOW, DESCRIBE, EXISTS, WITH)")
    if _OUTFILE.search(query):
        raise RequestRefused("INTO OUTFILE is not allowed over HTTP")


def _is_insert(query: str) -> bool:
    return query.lstrip().upper().startswith("INSERT")


def _settings_clause(settings: Mapping[str, str]) -> str:
    if not settings:
        return ""
    parts = []
    for key, value in settings.items():
        if not re.fullmatch(r"\w+", key):
            raise RequestRefused(f"invalid setting name {key!r}", code=115, name="UNKNOWN_SETTING")
        quoted = (
            value
            if value.lstrip("-").replace(".", "", 1).isdigit()
            else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        )
        parts.append(f"{key}={quoted}")
    return " SETTINGS " + ", ".join(parts)


def _token(headers: Any, url_params: Mapping[str, str]) -> str | None:
    """The password a request carries, wherever ClickHouse accepts one."""
    key = headers.get("X-ClickHouse-Key")
    if key:
        return str(key)
    scheme, _, encoded = str(headers.get("Authorization", "")).partition(" ")
    if scheme == "Basic":
        try:
            _user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        except ValueError:
            return None
        return password
    return url_params.get("password")


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of a ``multipart/form-data`` body, as text."""
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if name:
            fields[str(name)] = payload.decode("utf-8") if isinstance(payload, bytes) else ""
    return fields


def _make_handler(server: ChdbHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with server._lock:
                server._connections.add(self.connection)

        def finish(self) -> None:
            with server._lock:
                server._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("store http: " + format, *args)

        def _handle(self, method: str) -> None:
            parsed = urlparse(self.path)
            qs = {k: v[-1] for k, v in parse_qs(parsed.query, keep_blank_values=True).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if parsed.path == "/ping" or (method == "GET" and parsed.path == "/" and not qs):
                self._reply(200, b"Ok.\n")  # as ClickHouse: the health check needs no password
                return
            grant = server.grant_of(_token(self.headers, qs))
            if grant is None:
                self._reply(401, _AUTH_FAILED, code="516")
                return
            content_type = self.headers.get("Content-Type", "")
            if content_type.startswith("multipart/form-data"):
                # clickhouse-connect sends long parameters (over 4 KB) as form fields.
                qs.update(_form_fields(content_type, body))
                body = b""
            query = qs.pop("query", "")
            if method == "POST" and not query and _is_insert(body[:64].decode("utf-8", "replace")):
                # INSERT ... FORMAT X, a newline, then the data: all in the body.
                head, _, body = body.partition(b"\n")
                query = head.decode("utf-8")
            elif method == "POST" and not query:
                query, body = body.decode("utf-8"), b""
            elif method == "POST" and body and not _is_insert(query):
                query, body = query + " " + body.decode("utf-8"), b""
            params = {k[6:]: v for k, v in qs.items() if k.startswith("param_")}
            settings = {k: v for k, v in qs.items() if not k.startswith("param_")}
            request = HttpRequest(method, query, params, settings, body, grant)
            try:
                data = server.run(request)
            except RequestRefused as exc:
                self._reply(500, exc.response(), str(exc.code))
                return
            except Exception as exc:
                text = str(exc).removeprefix("query failed: ")
                if "Code:" not in text:
                    text = f"Code: 1000. DB::Exception: {text}"
                match = _CODE.search(text)
                self._reply(500, text.encode(), match.group(1) if match else "1000")
                return
            self._reply(200, data)

        def _reply(self, status: int, data: bytes, code: str = "") -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-ClickHouse-Server-Display-Name", "sagascope-chdb")
            self.send_header("X-ClickHouse-Timezone", "UTC")
            if code:
                self.send_header("X-ClickHouse-Exception-Code", code)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler
