"""A loopback HTTP server that answers like ClickHouse by running each request in chDB.

Enough of ClickHouse's HTTP interface for clickhouse-connect: the query from the URL and/or
the body, ``param_<name>`` server-side parameters, ``database``, insert data in the body, and
errors as HTTP 500 with ClickHouse's ``Code: N. DB::Exception`` text. It records every request
so tests can assert what the driver sent. It can be stopped and started again on the same port
to make the store unavailable for real (connection refused).
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from sagascope.store import ChdbStore

# Settings the driver sends that chDB's session does not need per request.
_TRANSPORT = {
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
}


@dataclass
class SeenRequest:
    method: str
    query: str
    params: dict[str, str]
    settings: dict[str, str]
    body: bytes


class ChdbHttpServer:
    """``with ChdbHttpServer(chdb_path) as srv: srv.url`` (``http://127.0.0.1:<port>``)."""

    def __init__(
        self, chdb_path: str, port: int = 0, *, credentials: tuple[str, str] | None = None
    ) -> None:
        self.chdb_path = chdb_path
        self.port = port
        #: (user, password) every request must carry (Basic auth), as a server with a
        #: password-protected user demands; None accepts any.
        self.credentials = credentials
        self.requests: list[SeenRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://default:@127.0.0.1:{self.port}"

    def start(self) -> ChdbHttpServer:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection, as a server that goes away does."""
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

    def run(self, request: SeenRequest) -> bytes:
        """Run one request in chDB (one at a time: the chDB session is shared)."""
        database = request.settings.get("database") or "default"
        store = ChdbStore(self.chdb_path, database if database != "default" else "default")
        session = store._session
        with ChdbStore._lock:
            ChdbStore._current_db.pop(self.chdb_path, None)
            session.query(f"USE {database}")
            settings = {k: v for k, v in request.settings.items() if k not in _TRANSPORT}
            query = request.query
            if request.method == "POST" and request.body and _is_insert(query):
                sql = query + _settings_clause(settings)
                fmt = query.rsplit("FORMAT", 1)[1].strip() if "FORMAT" in query else "TabSeparated"
                sql = sql.replace(f"FORMAT {fmt}", "").strip()
                inserter = session.send_insert(sql, fmt)
                inserter.append(request.body)
                inserter.finish()
                return b""
            fmt = "TabSeparated"
            text = query.strip().rstrip(";")
            upper = text.upper()
            if " FORMAT " in upper:
                idx = upper.rindex(" FORMAT ")
                fmt = text[idx + 8 :].split()[0]
                text = text[:idx]
            elif "default_format" in request.settings:
                fmt = request.settings["default_format"]
            result = session.query(
                text + _settings_clause(settings),
                fmt,
                params=request.params or None,
            )
            return bytes(result.bytes()) if result is not None else b""


def _authorized(header: str, credentials: tuple[str, str]) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme != "Basic":
        return False
    try:
        given = base64.b64decode(encoded).decode("utf-8")
    except ValueError:
        return False
    return given == f"{credentials[0]}:{credentials[1]}"


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of a ``multipart/form-data`` body, as text."""
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    fields: dict[str, str] = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if name:
            fields[str(name)] = payload.decode("utf-8")
    return fields


def _is_insert(query: str) -> bool:
    return query.lstrip().upper().startswith("INSERT")


def _settings_clause(settings: dict[str, str]) -> str:
    if not settings:
        return ""
    parts = []
    for key, value in settings.items():
        quoted = (
            value
            if value.lstrip("-").replace(".", "", 1).isdigit()
            else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        )
        parts.append(f"{key}={quoted}")
    return " SETTINGS " + ", ".join(parts)


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
            pass

        def _handle(self, method: str) -> None:
            parsed = urlparse(self.path)
            qs = {k: v[-1] for k, v in parse_qs(parsed.query, keep_blank_values=True).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
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
            if server.credentials is not None and not _authorized(
                self.headers.get("Authorization", ""), server.credentials
            ):
                self._reply(
                    401,
                    b"Code: 516. DB::Exception: Authentication failed: password is incorrect, "
                    b"or there is no user with such name. (AUTHENTICATION_FAILED)",
                )
                return
            params = {k[6:]: v for k, v in qs.items() if k.startswith("param_")}
            settings = {k: v for k, v in qs.items() if not k.startswith("param_")}
            request = SeenRequest(method, query, params, settings, body)
            server.requests.append(request)
            try:
                data = server.run(request)
                status = 200
            except Exception as exc:
                text = str(exc)
                data = (text if "Code:" in text else f"Code: 1000. DB::Exception: {text}").encode()
                status = 500
            self._reply(status, data)

        def _reply(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-ClickHouse-Server-Display-Name", "chdb-loopback")
            self.send_header("X-ClickHouse-Timezone", "UTC")
            if status != 200:
                self.send_header("X-ClickHouse-Exception-Code", "516" if status == 401 else "1000")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler
