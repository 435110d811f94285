"""The owner's read server (``sagascope.store.serving``) as a stand-in ClickHouse server.

Every statement allowed, as a server's admin user; it records every request so tests can assert
what the driver sent, and it can be stopped and started again on the same port to make the
store unavailable for real (connection refused).
"""

from __future__ import annotations

from sagascope.store import ChdbStore
from sagascope.store.serving import ChdbHttpServer as _ReadServer
from sagascope.store.serving import Grant, HttpRequest

#: A ClickHouse server's admin user: every statement.
ADMIN = Grant(any_statement=True)

SeenRequest = HttpRequest


class ChdbHttpServer(_ReadServer):
    """``with ChdbHttpServer(chdb_path) as srv: srv.url`` (``http://default:@127.0.0.1:<port>``)."""

    def __init__(
        self, chdb_path: str, port: int = 0, *, credentials: tuple[str, str] | None = None
    ) -> None:
        #: (user, password) every request must carry, as a server with a password-protected
        #: user demands (the password is checked); None accepts any request.
        self.credentials = credentials
        self.requests: list[HttpRequest] = []
        super().__init__(
            ChdbStore(chdb_path, "default"),
            port,
            tokens={credentials[1]: ADMIN} if credentials else None,
            anonymous=None if credentials else ADMIN,
        )

    @property
    def url(self) -> str:
        return f"http://default:@127.0.0.1:{self.port}"

    def run(self, request: HttpRequest) -> bytes:
        self.requests.append(request)
        return super().run(request)
