"""Streamlit's server started in this process, so the demo can share its chDB store with it."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

from sagascope.dashboard import auth, runtime
from sagascope.dashboard.exceptions import DashboardError
from sagascope.settings import Settings
from sagascope.store import Store

log = logging.getLogger(__name__)

#: The Streamlit main script: ``st.navigation`` over the pages.
APP_PATH = Path(__file__).with_name("app.py")

_started = threading.Lock()


class DashboardServer:
    """A running dashboard: ``url`` to open, ``stop()`` to shut it down."""

    def __init__(self, server: Any, loop: asyncio.AbstractEventLoop, thread: threading.Thread,
                 url: str) -> None:
        self._server = server
        self._loop = loop
        self._thread = thread
        #: Where the dashboard answers, e.g. ``http://127.0.0.1:8501``.
        self.url = url

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server and wait for its thread; safe to call twice."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._server.stop)
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("dashboard server did not stop within %.1f s", timeout_s)

    def wait(self) -> None:
        """Block until the server stops (Ctrl+C stops it)."""
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            self.stop()
            raise

    def __enter__(self) -> DashboardServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _streamlit_options(settings: Settings, port: int) -> dict[str, Any]:
    host = settings.dashboard.host
    return {
        "server.address": host,
        "server.port": port,
        "server.headless": True,
        "server.fileWatcherType": "none",
        "server.runOnSave": False,
        "browser.gatherUsageStats": False,
        "browser.serverAddress": host,
        "global.developmentMode": False,
        "client.toolbarMode": "viewer",
        "client.showErrorDetails": "none",
        "theme.base": "light",
        "theme.primaryColor": "#3b5bdb",
    }


def serve(
    settings: Settings,
    store: Store | None = None,
    *,
    port: int | None = None,
    block: bool = True,
    timeout_s: float = 30.0,
) -> DashboardServer:
    """Start Streamlit's server in this process on ``settings.dashboard.host``.

    Args:
        settings: the settings; the dashboard section gives host and port.
        store: a store already open in this process (embedded mode shares it; the pages get
            a read-only handle on it, and only alert acknowledgements write through it);
            when None, the pages open the settings' store read-only.
        port: overrides ``settings.dashboard.port``; ``0`` picks a free port.
        block: wait until the server stops (Ctrl+C) before returning.
        timeout_s: how long to wait for the server to listen.

    Returns:
        The running server (already stopped when ``block`` is true).

    Raises:
        DashboardError: the server could not start, or one already runs in this process.
    """
    if not _started.acquire(blocking=False):
        raise DashboardError("a dashboard server already runs in this process (Streamlit allows one)")
    chosen_port = settings.dashboard.port if port is None else port
    try:
        auth.check_access(settings.dashboard)
    except BaseException:
        _started.release()
        raise
    reader = runtime.read_only_view(store) if store is not None else None
    runtime.configure(settings, reader, writer=store)
    _load_streamlit_config(settings, chosen_port)
    handle = _start_server_thread(settings, chosen_port, timeout_s)
    if block:
        handle.wait()
    return handle


def _load_streamlit_config(settings: Settings, port: int) -> None:
    from streamlit.web import bootstrap

    options = _streamlit_options(settings, port)
    if auth.login_required(settings.dashboard) and auth.uses_oidc(settings.dashboard):
        options["secrets.files"] = [auth.write_oidc_secrets(settings.dashboard)]
    bootstrap.load_config_options({k.replace(".", "_"): v for k, v in options.items()})
    bootstrap.prepare_streamlit_environment(str(APP_PATH))


def _start_server_thread(settings: Settings, port: int, timeout_s: float) -> DashboardServer:
    """Run Streamlit's server on its own event loop in a daemon thread; wait until it listens."""
    from streamlit import config as st_config
    from streamlit.web.server import Server

    ready = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    server = Server(str(APP_PATH), False)

    async def main() -> None:
        try:
            await server.start()
        except BaseException as exc:  # SystemExit when the port is taken
            failure.append(exc)
            ready.set()
            return
        ready.set()
        await server.stopped

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        except Exception:
            log.exception("dashboard server crashed")
        finally:
            loop.close()
            ready.set()

    thread = threading.Thread(target=run, name="sagascope-dashboard", daemon=True)
    thread.start()
    if not ready.wait(timeout_s):
        raise DashboardError(f"dashboard server did not start within {timeout_s:.0f} s")
    if failure or not thread.is_alive():
        cause = failure[0] if failure else None
        raise DashboardError(
            f"dashboard server could not listen on {settings.dashboard.host}:{port}"
            + (f": {cause!r}" if cause else "")
        ) from cause
    url = f"http://{settings.dashboard.host}:{int(st_config.get_option('server.port'))}"
    log.info("dashboard listening url=%s", url)
    return DashboardServer(server, loop, thread, url)
