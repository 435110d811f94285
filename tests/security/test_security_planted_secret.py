"""A planted secret never shows: run the commands with secrets from env and files, --verbose,
make them fail, and search everything they print, log, serve and send for it."""

from __future__ import annotations

import json
import signal
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from seeding import message_row
from waiting import wait_until

from sagascope.embedded import EmbeddedBroker, free_port
from sagascope.store import ClickHouseStore, ensure_schema
from tests.collector.chdb_http import ChdbHttpServer
from tests.security.clirun import sagascope, start_sagascope, wait_for_log, wait_for_page

pytestmark = pytest.mark.slow

#: Passwords planted in the environment and in secret files.
SECRET = f"Pl4nted-{uuid.uuid4().hex}"
OTHER_SECRET = f"Pl4nted-wrong-{uuid.uuid4().hex}"
USER = "sagascope_reader"
CHROMIUM = "/usr/bin/chromium"


class Seen:
    """Everything the tool showed anyone, to search for the secrets."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def add(self, where: str, text: str) -> None:
        self.texts[where] = self.texts.get(where, "") + text

    def leaks(self) -> list[str]:
        return [where for where, text in self.texts.items()
                if SECRET in text or OTHER_SECRET in text]


class _Capture(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        _Capture.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def webhook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def clickhouse(chdb_path: str) -> Iterator[str]:
    """A password-protected loopback ClickHouse with one stalled saga in database ``planted``."""
    with ChdbHttpServer(chdb_path, credentials=(USER, SECRET)) as server:
        url = f"http://127.0.0.1:{server.port}"
        store = ClickHouseStore(url, "planted", username=USER, password=SECRET)
        ensure_schema(store)
        start = datetime.now(UTC) - timedelta(hours=1)
        store.insert("messages", [message_row(
            saga_id="order-planted", saga_type="order", type="OrderPlaced", source="orders",
            event_time=start, kafka_time=start, topic="orders",
        )])
        yield url
        store.command("DROP DATABASE IF EXISTS planted")
        store.close()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    return path


def _run(seen: Seen, name: str, args: list[str], cwd: Path, env: dict[str, str]) -> int:
    result = sagascope([*args, "-vv"], cwd, env=env, timeout_s=120)
    seen.add(f"{name} stdout", result.stdout)
    seen.add(f"{name} stderr", result.stderr)
    return result.returncode


def test_no_command_shows_a_planted_secret(
    tmp_path: Path, clickhouse: str, webhook: str, broker: EmbeddedBroker,
    sasl_broker: EmbeddedBroker, secret_file: Path,
) -> None:
    seen = Seen()
    store_env = {
        "SAGASCOPE_STORE_URL": clickhouse, "SAGASCOPE_STORE_DATABASE": "planted",
        "SAGASCOPE_STORE_USERNAME": USER, "SAGASCOPE_STORE_PASSWORD": SECRET,
        "SAGASCOPE_BROKER_SASL_PASSWORD": SECRET, "SAGASCOPE_DASHBOARD_PASSWORD": SECRET,
    }
    sasl_env = {
        "SAGASCOPE_BROKER_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SAGASCOPE_BROKER_SASL_USERNAME": "alice",
        "SAGASCOPE_BROKER_CONNECT_TIMEOUT_S": "10",
    }
    _Capture.bodies.clear()

    # Works, with the password from the environment: the alert reaches the webhook.
    assert _run(seen, "alert", ["alert", "--once", "--sinks", "webhook,log", "--webhook-url",
                                webhook, "--default-threshold", "60"], tmp_path, store_env) == 0
    assert any(b"order-planted" in body for body in _Capture.bodies)
    seen.add("webhook payloads", b"".join(_Capture.bodies).decode())
    # Works, with the password from a file.
    file_env = {**store_env, "SAGASCOPE_STORE_PASSWORD": "",
                "SAGASCOPE_STORE_PASSWORD_FILE": str(secret_file)}
    assert _run(seen, "flow", ["flow", "order-planted"], tmp_path, file_env) == 0

    # Fails: a wrong store password; SASL PLAIN refused by a broker without SASL; SCRAM
    # against a broker that knows no such user; the Kafka alert sink with a SASL password file.
    assert _run(seen, "flow-wrong", ["flow", "order-planted"], tmp_path,
                {**store_env, "SAGASCOPE_STORE_PASSWORD": OTHER_SECRET}) == 1
    plain = {**store_env, **sasl_env, "SAGASCOPE_BROKER_BOOTSTRAP_SERVERS": broker.bootstrap_servers}
    (tmp_path / "log.csv").write_text("case,activity,timestamp\nc1,A,2024-01-01T00:00:00Z\n")
    assert _run(seen, "replay-plain", ["replay", "log.csv", "--no-progress"], tmp_path, plain) == 1
    scram = {**store_env, **sasl_env, "SAGASCOPE_BROKER_BOOTSTRAP_SERVERS":
             sasl_broker.bootstrap_servers, "SAGASCOPE_BROKER_SASL_MECHANISM": "SCRAM-SHA-512"}
    assert _run(seen, "collect-scram", ["collect"], tmp_path, scram) == 1
    assert "SASL SCRAM-SHA-512 authentication" in seen.texts["collect-scram stderr"]
    sink = {**scram, "SAGASCOPE_BROKER_SASL_PASSWORD": "",
            "SAGASCOPE_BROKER_SASL_PASSWORD_FILE": str(secret_file)}
    assert _run(seen, "alert-kafka", ["alert", "--once", "--sinks", "kafka"], tmp_path, sink) == 1

    # The collector's metrics page and log, while it runs with the secrets set.
    port = free_port()
    log = tmp_path / "collect.log"
    collector = start_sagascope(
        ["collect", "-vv", "--metrics-port", str(port), "--include", "planted\\..*"], tmp_path,
        env={**store_env, "SAGASCOPE_BROKER_BOOTSTRAP_SERVERS": broker.bootstrap_servers},
        log=log,
    )
    try:
        seen.add("metrics", wait_for_page(
            f"http://127.0.0.1:{port}/metrics", collector, log,
            lambda text: "sagascope_collector_store_available 1.0" in text, 60,
            "metrics showing a connected collector",
        ))
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=60)
    seen.add("collect log", log.read_text())

    seen.add("dashboard", _dashboard_pages(tmp_path, store_env))

    assert seen.leaks() == []
    # The runs did fail where meant to, with errors (not silence) to search.
    assert "store.password" in seen.texts["flow-wrong stderr"]
    assert "broker.sasl_mechanism" in seen.texts["replay-plain stderr"]


def _dashboard_pages(tmp_path: Path, env: dict[str, str]) -> str:
    """Every page's HTML after logging in with the planted password, plus the server's log."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    port = free_port()
    log = tmp_path / "dashboard.log"
    process = start_sagascope(
        ["dashboard", "-vv", "--host", "0.0.0.0", "--port", str(port)], tmp_path, env=env, log=log
    )
    shown = ""
    try:
        wait_for_log(process, log, "sagascope dashboard:", 60)
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            page = browser.new_page()
            page.goto(base)
            page.get_by_label("Password", exact=True).fill(SECRET)
            page.get_by_role("button", name="Log in").click()
            page.get_by_role("link", name="Flow explorer").wait_for(timeout=30000)
            # What the viewer typed stays in their own page until the run replaces it.
            page.get_by_label("Password", exact=True).wait_for(state="detached", timeout=30000)
            wait_until(page.context.cookies, what="the dashboard's admission cookie")
            for path in ("", "flow_explorer?saga=order-planted", "stalled_sagas", "alerts"):
                # Each page load is a new Streamlit session, admitted by the login's cookie.
                page.goto(f"{base}/{path}")
                page.get_by_role("link", name="Flow explorer").wait_for(timeout=30000)
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                    timeout=30000,
                )
                if "saga=" in path:
                    page.get_by_text("Audit trail").first.wait_for(timeout=30000)
                shown += page.content()
            assert "order-planted" in shown
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    return shown + json.dumps(log.read_text())
