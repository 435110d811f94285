"""``sagascope serve``: one machine watching your Kafka.

The collector, the alerter, the saga metrics and the dashboard in this one process, on the
embedded store (or the ``[store]`` server), against the broker ``[broker]`` names with every
setting it has; no demo traffic. The process owns the embedded store and serves reads to every
other one (``flow``, ``stalled``, ``verify``, more dashboards, clickhouse-connect), see
:mod:`sagascope.store.owner`. ``sagascope demo`` is this plus demo traffic: both start their
parts through :class:`OneMachine`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from types import FrameType
from typing import Any
from urllib.parse import urlparse

from sagascope.commands._flags import add_collector_topic_flags, setting_flag
from sagascope.settings import Settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_collector_topic_flags(parser)
    add_machine_arguments(parser)


def add_machine_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags ``serve`` and ``demo`` share."""
    setting_flag(parser, "--port", setting="dashboard.port", type=int, metavar="PORT",
                 help="dashboard port; 0 picks a free one")
    setting_flag(parser, "--metrics-port", setting="alerts.metrics_port", type=int, metavar="PORT",
                 help="port of the saga metrics for Prometheus; 0 picks a free one")
    parser.add_argument("--no-dashboard", action="store_true", help="do not serve the dashboard")
    parser.add_argument(
        "--duration", type=float, default=0.0, metavar="SECONDS",
        help="stop by itself after this many seconds (default: run until Ctrl-C)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sagascope.commands._connect import consumer_config, quiet_kafka_clients

    quiet_kafka_clients(args.verbose)
    config = consumer_config(settings, "serve")
    stop = threading.Event()
    with StopSignals(stop), ExitStack() as stack:
        machine = OneMachine("serve", settings, stack)
        machine.open_store()
        machine.say_broker(settings.broker.bootstrap_servers)
        if not args.no_dashboard:
            machine.serve_dashboard()
        machine.start_collector(config, collector_id="serve")
        machine.serve_metrics()
        machine.start_alerter()
        machine.say("running; Ctrl-C to stop")
        wait_for_stop(stop, args.duration)
        machine.say("stopping")
    return 0


def with_setting(settings: Settings, section: str, **values: Any) -> Settings:
    """``settings`` with some values of one section replaced."""
    return dataclasses.replace(
        settings, **{section: dataclasses.replace(getattr(settings, section), **values)}
    )


class StopSignals:
    """SIGINT and SIGTERM set an event (restored on exit), so shutdown runs in order."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        self._stop.set()

    def __enter__(self) -> StopSignals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def wait_for_stop(
    stop: threading.Event, duration_s: float, tick: Callable[[], object] | None = None
) -> None:
    """Until a signal, or ``duration_s`` (0: no limit); ``tick`` runs every half second."""
    from sagascope.exceptions import ConfigError

    if duration_s < 0:
        raise ConfigError(f"--duration must be >= 0 seconds, got {duration_s}")
    deadline = time.monotonic() + duration_s if duration_s else None
    while not stop.is_set():
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return
        stop.wait(0.5 if remaining is None else min(0.5, remaining))
        if tick is not None:
            tick()


class OneMachine:
    """The parts of one machine's deployment, each started by one method and stopped, in
    reverse order, by ``stack``; one line on stdout per part.

    Args:
        label: the command, for the lines it prints (``serve``, ``demo``).
        settings: the settings; :attr:`settings` follows what the parts changed (the
            dashboard's public URL once it listens).
    """

    def __init__(self, label: str, settings: Settings, stack: ExitStack) -> None:
        self.label = label
        self.settings = settings
        self.stack = stack
        self.store: Any = None
        self.dashboard_url = ""

    def say(self, text: str) -> None:
        print(f"sagascope {self.label}: {text}", flush=True)

    def open_store(self) -> Any:
        """Own the store (an embedded one is served to other processes) and create its schema."""
        from sagascope.commands._connect import open_owned_store
        from sagascope.store import ensure_schema

        cfg = self.settings.store
        store, owner = open_owned_store(cfg, self.label)
        self.stack.callback(store.close)
        if owner is not None:
            self.stack.callback(owner.close)
        ensure_schema(store, cfg.cluster)
        self.store = store
        if owner is not None:
            self.say(f"store {cfg.path} (database {cfg.database}); other processes read it at "
                     f"{owner.url}, token in {cfg.path}/owner.json")
        else:
            parsed = urlparse(cfg.url)
            self.say(f"store ClickHouse at {parsed.hostname}:{parsed.port} "
                     f"(database {cfg.database})")
        return store

    def say_broker(self, bootstrap_servers: str, what: str = "broker") -> None:
        broker = self.settings.broker
        security = broker.security_protocol or "PLAINTEXT"
        self.say(f"{what} at {bootstrap_servers} ({security})")

    def serve_dashboard(self) -> str:
        """The dashboard over the store; its URL becomes the alerts' link base."""
        from sagascope.dashboard.exceptions import DashboardError
        from sagascope.dashboard.server import serve
        from sagascope.exceptions import SagascopeError

        try:
            handle = serve(self.settings, self.store, block=False)
        except DashboardError as exc:
            raise SagascopeError(
                f"{exc} (choose another port with --port; 0 picks a free one)"
            ) from exc
        self.stack.callback(handle.stop)
        url = str(handle.url)
        self.dashboard_url = url
        self.say(f"dashboard at {url}")
        if not self.settings.dashboard.public_url:
            # Links go where it really listens (--port 0 picks a port); a public URL the user
            # set (a proxy in front) stays.
            self.settings = with_setting(self.settings, "dashboard", public_url=url)
        return url

    def start_collector(self, consumer_config: dict[str, Any], collector_id: str) -> None:
        from sagascope.collector import Collector

        collector = Collector(
            self.store, self.settings.broker.bootstrap_servers, self.settings.collector,
            collector_id=collector_id, consumer_config=consumer_config,
        )
        collector.start()
        self.stack.callback(collector.stop)

    def serve_metrics(self) -> str:
        """The saga metrics endpoint (``alerts.metrics_port``, 0 = a free port)."""
        from sagascope.alerter.saga_metrics import serve_saga_metrics
        from sagascope.exceptions import SagascopeError
        from sagascope.queries import SagaQueries

        cfg = self.settings.alerts
        try:
            server = serve_saga_metrics(
                SagaQueries.from_settings(self.store, cfg), cfg.metrics_port, cfg.metrics_host
            )
        except OSError as exc:
            raise SagascopeError(
                f"cannot serve saga metrics on {cfg.metrics_host}:{cfg.metrics_port}: {exc} "
                "(choose another port with --metrics-port; 0 picks a free one)"
            ) from exc
        self.stack.callback(server.close)
        self.say(f"saga metrics at {server.url}")
        return str(server.url)

    def start_alerter(self) -> None:
        from sagascope.alerter import Alerter

        alerter_stop = threading.Event()
        alerter = Alerter.from_settings(self.store, self.settings)
        thread = alerter.start(alerter_stop)
        self.stack.callback(alerter.close)
        self.stack.callback(thread.join, 15.0)
        self.stack.callback(alerter_stop.set)
