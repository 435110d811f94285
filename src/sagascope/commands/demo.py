"""``sagascope demo``: everything local in one command.

Starts the embedded broker (unless ``--bootstrap-servers``), the store (embedded chDB unless
``--clickhouse-url``), the collector, the demo services and their traffic, the alerter and the
dashboard, all in this one process (a chDB directory opens in one process only). Prints the
dashboard URL; Ctrl-C or SIGTERM stops everything, in reverse order, and joins every thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import resource
import signal
import sys
import threading
import time
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

from sagascope.commands._flags import setting_flag
from sagascope.settings import DEFAULT_CONFIG_FILE, ENV_CONFIG_FILE, Settings, load_settings

log = logging.getLogger(__name__)

#: The demo configuration shipped with the package, used when no config file is given.
PACKAGED_CONFIG = "demo.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    setting_flag(parser, "--rate", setting="demo.rate", type=float, metavar="SAGAS_PER_S",
                 help="sagas started per second")
    setting_flag(parser, "--seed", setting="demo.seed", type=int, metavar="N",
                 help="seed of the traffic and faults")
    setting_flag(parser, "--max-sagas", setting="demo.max_sagas", type=int, metavar="N",
                 help="start at most N sagas, then keep running")
    setting_flag(parser, "--port", setting="dashboard.port", type=int, metavar="PORT",
                 help="dashboard port; 0 picks a free one")
    parser.add_argument(
        "--duration", type=float, default=0.0, metavar="SECONDS",
        help="stop by itself after this many seconds (default: run until Ctrl-C)",
    )
    setting_flag(parser, "--metrics-port", setting="alerts.metrics_port", type=int, metavar="PORT",
                 help="port of the saga metrics for Prometheus; 0 picks a free one")
    parser.add_argument("--no-dashboard", action="store_true", help="do not serve the dashboard")
    parser.add_argument(
        "--ground-truth", metavar="PATH",
        help="at exit, write each started saga's plan, expected messages and status (JSON lines)",
    )


def _demo_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """The packaged demo config when the user gave none (no --config, env or ./sagascope.toml)."""
    if args.config or os.environ.get(ENV_CONFIG_FILE) or Path(DEFAULT_CONFIG_FILE).is_file():
        return settings
    overrides = {k: v for k, v in vars(args).items() if "." in k}
    packaged = resources.files("sagascope.demo_services").joinpath(PACKAGED_CONFIG)
    with resources.as_file(packaged) as path:
        return load_settings(path, overrides)


def _with(settings: Settings, section: str, **values: Any) -> Settings:
    return dataclasses.replace(
        settings, **{section: dataclasses.replace(getattr(settings, section), **values)}
    )


class _StopSignals:
    """SIGINT and SIGTERM set an event (restored on exit), so shutdown runs in order."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping the demo", signum)
        self._stop.set()

    def __enter__(self) -> _StopSignals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sagascope.alerter import Alerter
    from sagascope.collector import Collector
    from sagascope.demo_services import DemoRunner
    from sagascope.embedded import EmbeddedBroker
    from sagascope.store import ensure_schema, open_store_from_settings

    settings = _demo_settings(args, settings)
    if not args.verbose:
        # kafka-python warns about slow event-loop turns on a busy machine: noise in a demo.
        logging.getLogger("kafka").setLevel(logging.ERROR)
    if args.duration < 0:
        from sagascope.exceptions import ConfigError

        raise ConfigError(f"--duration must be >= 0 seconds, got {args.duration}")
    stop = threading.Event()
    started = time.monotonic()
    with _StopSignals(stop), ExitStack() as stack:
        if not settings.broker.bootstrap_servers:
            broker = EmbeddedBroker().start()
            stack.callback(broker.stop)
            settings = _with(settings, "broker", bootstrap_servers=broker.bootstrap_servers)
            print(f"sagascope demo: embedded broker at {broker.bootstrap_servers}", flush=True)
        bootstrap = settings.broker.bootstrap_servers
        cfg = settings.store
        store = open_store_from_settings(cfg)
        stack.callback(store.close)
        ensure_schema(store, cfg.cluster)

        # The dashboard first: a taken port fails fast, and the URL is there soonest.
        url = _serve_dashboard(settings, store, stack) if not args.no_dashboard else ""
        if url:
            print(f"sagascope demo: dashboard at {url}", flush=True)
            if settings.dashboard.public_url.rstrip("/") != url.rstrip("/"):
                settings = _with(settings, "dashboard", public_url=url)

        runner = DemoRunner(settings.demo, bootstrap,
                            telemetry_topic=settings.collector.telemetry_topic,
                            client_id=f"{settings.broker.client_id}-demo",
                            clients=_client_configs(settings))
        # Topics first, so the collector's pattern subscription sees them from the start.
        runner.start(traffic=False)
        stack.callback(_finish, runner, args.ground_truth, started)

        from sagascope.connections import kafka_python_config

        collector = Collector(store, bootstrap, settings.collector, collector_id="demo",
                              consumer_config=kafka_python_config(settings.broker))
        collector.start()
        stack.callback(collector.stop)

        metrics = _serve_metrics(settings, store)
        stack.callback(metrics.close)
        print(f"sagascope demo: saga metrics at {metrics.url}", flush=True)

        alerter_stop = threading.Event()
        alerter = Alerter.from_settings(store, settings)
        alerter_thread = alerter.start(alerter_stop)
        stack.callback(alerter.close)
        stack.callback(alerter_thread.join, 15.0)
        stack.callback(alerter_stop.set)

        assert runner.traffic is not None
        runner.traffic.start()
        stack.callback(runner.stop)
        print(f"sagascope demo: {settings.demo.rate:g} sagas/s over the four saga types; "
              "Ctrl-C to stop", flush=True)
        deadline = started + args.duration if args.duration else None
        first_stored = False
        while not stop.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            stop.wait(0.5 if remaining is None else min(0.5, remaining))
            if not first_stored:
                first_stored = _announce_first_saga(store, runner, url, started)
        print("sagascope demo: stopping", flush=True)
    return 0


def _client_configs(settings: Settings) -> Any:
    """TLS/SASL settings from ``[broker]`` for the demo services' three Kafka clients.

    A secured external broker is checked once first, so a wrong CA or password is one error
    naming the setting instead of services retrying forever.
    """
    from sagascope.broker_check import check_broker
    from sagascope.connections import (
        aiokafka_config,
        confluent_config,
        kafka_python_config,
        uses_sasl,
        uses_tls,
    )
    from sagascope.demo_services import ClientConfigs

    broker = settings.broker
    if not (uses_tls(broker) or uses_sasl(broker)):
        return ClientConfigs()
    check_broker(broker)
    return ClientConfigs(kafka_python=kafka_python_config(broker),
                         confluent=confluent_config(broker), aiokafka=aiokafka_config(broker))


def _announce_first_saga(store: Any, runner: Any, url: str, started: float) -> bool:
    """Print a link to the first saga once it is stored; whether it is."""
    sagas = runner.ground_truth.sagas()
    if not sagas:
        return False
    from sagascope.queries import flow_link

    saga_id = sagas[0].saga_id
    try:
        stored = store.query(
            "SELECT count() FROM messages WHERE saga_id = {saga_id:String}", {"saga_id": saga_id}
        ).scalar()
    except Exception as exc:  # the store is the collector's concern; never stop the demo
        log.debug("first-saga check failed: %s", exc)
        return False
    if not stored:
        return False
    where = flow_link(url, saga_id) if url else saga_id
    print(f"sagascope demo: first saga stored after {time.monotonic() - started:.1f} s: {where}",
          flush=True)
    return True


def _serve_metrics(settings: Settings, store: Any) -> Any:
    """The saga metrics endpoint (``alerts.metrics_port``, 0 = a free port)."""
    from sagascope.alerter.saga_metrics import serve_saga_metrics
    from sagascope.exceptions import SagascopeError
    from sagascope.queries import SagaQueries

    cfg = settings.alerts
    try:
        return serve_saga_metrics(
            SagaQueries.from_settings(store, cfg), cfg.metrics_port, cfg.metrics_host
        )
    except OSError as exc:
        raise SagascopeError(
            f"cannot serve saga metrics on {cfg.metrics_host}:{cfg.metrics_port}: {exc} "
            "(choose another port with --metrics-port; 0 picks a free one)"
        ) from exc


def _serve_dashboard(settings: Settings, store: Any, stack: ExitStack) -> str:
    from sagascope.dashboard.exceptions import DashboardError
    from sagascope.dashboard.server import serve
    from sagascope.exceptions import SagascopeError

    try:
        handle = serve(settings, store, block=False)
    except DashboardError as exc:
        raise SagascopeError(f"{exc} (choose another port with --port; 0 picks a free one)") from exc
    stack.callback(handle.stop)
    return str(handle.url)


def _finish(runner: Any, ground_truth_path: str | None, started: float) -> None:
    """Summarize the run (sagas by expected outcome, memory) and write the ground truth."""
    runner.stop()
    truth = runner.ground_truth
    if ground_truth_path:
        truth.dump(ground_truth_path)
    outcomes = truth.outcomes
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"sagascope demo: {truth.started} sagas in {time.monotonic() - started:.0f} s "
        f"({', '.join(f'{n} {s}' for s, n in sorted(outcomes.items())) or 'none'}); "
        f"peak memory {peak_mb:.0f} MB",
        file=sys.stderr, flush=True,
    )
