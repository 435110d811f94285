"""Alerter fixtures: a real webhook receiver on loopback, alert builders."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from waiting import wait_until

from sagascope.embedded import free_port
from sagascope.queries import Alert


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records JSON POSTs; can be started late and stopped."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[dict[str, Any]] = []
        #: Status codes to answer with, in order, before answering 200.
        self.fail_with: list[int] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests += 1
                    status = receiver.fail_with.pop(0) if receiver.fail_with else 200
                    if status == 200:
                        receiver.received.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            with self._lock:
                return list(self.received) if len(self.received) >= count else None

        return wait_until(
            enough, timeout_s, lambda: f"{count} alerts (the webhook got {len(self.received)})", 0.02
        )


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def down_receiver() -> Iterator[WebhookReceiver]:
    """A receiver whose port nobody listens on until the test calls ``start()``."""
    r = WebhookReceiver()
    yield r
    r.stop()


@pytest.fixture
def make_alert() -> Callable[..., Alert]:
    def make(saga_id: str = "order-1", **kw: Any) -> Alert:
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "alert_id": f"a-{saga_id}",
            "state": "open",
            "saga_id": saga_id,
            "saga_type": "order-fulfillment",
            "step": "RetrievePayment",
            "waiting_for": "PaymentReceived",
            "since": now,
            "threshold_s": 2.0,
            "opened_at": now,
            "link": f"http://127.0.0.1:8501/flow_explorer?saga={saga_id}",
            "updated_at": now,
        }
        values.update(kw)
        return Alert(**values)

    return make
