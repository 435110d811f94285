"""``sagascope alert``: evaluate stalled-saga rules on an interval and send alerts to the sinks."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType
from typing import Any

from sagascope.commands._flags import setting_flag
from sagascope.settings import Settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    setting_flag(parser, "--interval", setting="alerts.interval_s", type=float,
                 metavar="SECONDS", help="seconds between evaluations")
    setting_flag(parser, "--default-threshold", setting="alerts.default_threshold_s", type=float,
                 metavar="SECONDS", help="seconds of silence before a saga no rule matches is stalled")
    setting_flag(parser, "--sinks", setting="alerts.sinks", metavar="LIST",
                 help="comma-separated sinks: log, webhook, kafka, alertmanager")
    setting_flag(parser, "--webhook-url", setting="alerts.webhook_url", metavar="URL",
                 help="URL the webhook sink POSTs alerts to")
    setting_flag(parser, "--alertmanager-urls", setting="alerts.alertmanager_urls", metavar="LIST",
                 help="comma-separated Alertmanager URLs for the alertmanager sink")
    setting_flag(parser, "--metrics-port", setting="alerts.metrics_port", type=int, metavar="PORT",
                 help="serve saga metrics for Prometheus on this port; 0 disables")
    parser.add_argument(
        "--once", action="store_true",
        help="evaluate once, print what opened and resolved, deliver, and exit",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sagascope.alerter import Alerter
    from sagascope.commands._connect import kafka_client_config
    from sagascope.store import (
        StoreThroughOwner,
        ensure_schema,
        open_store_from_settings,
        store_owner,
    )

    sinks = {name.strip() for name in settings.alerts.sinks.split(",")}
    if "kafka" in sinks:
        # Fails now, naming the setting, rather than in the sink's retry loop.
        kafka_client_config(settings, "the kafka alert sink")
    # First on an embedded store, this process owns it and serves it; beside its owner (a
    # `collect`), it reads and records alerts through the owner's alerts token.
    store = open_store_from_settings(settings.store, serve_reads=True)
    if isinstance(store, StoreThroughOwner):
        print(f"sagascope alert: the store is owned by {store.owner.describe()}; "
              f"reading it and recording alerts through {store.owner.url}", flush=True)
    else:
        ensure_schema(store, settings.store.cluster)
    owner = None if settings.store.url else store_owner(settings.store.path)
    if owner is not None:
        print(f"sagascope alert: store {settings.store.path}; other processes read it at "
              f"{owner.url}, token in {settings.store.path}/owner.json", flush=True)
    alerter = Alerter.from_settings(store, settings)
    metrics = None
    try:
        if settings.alerts.metrics_port and not args.once:
            metrics = _serve_metrics(store, settings)
        if args.once:
            result = alerter.evaluate_once()
            for alert in result.resolved + result.opened:
                print(f"{alert.event:8} {alert.saga_id} {alert.saga_type} after {alert.step} "
                      f"threshold {alert.threshold_s:g}s {alert.link}")
            print(f"stalled {result.stalled}, opened {len(result.opened)}, "
                  f"resolved {len(result.resolved)}, open {result.open}")
            return 0 if alerter.flush(timeout_s=settings.alerts.sink_timeout_s * 2) else 1
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            alerter.run(stop)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        return 0
    finally:
        if metrics is not None:
            metrics.close()
        alerter.close()
        store.close()
        if owner is not None:
            owner.close()


def _serve_metrics(store: Any, settings: Settings) -> Any:
    """The saga metrics endpoint, judging stalls as ``sagascope stalled`` does."""
    from sagascope.alerter.saga_metrics import serve_saga_metrics
    from sagascope.exceptions import ConfigError
    from sagascope.queries import SagaQueries

    cfg = settings.alerts
    try:
        server = serve_saga_metrics(
            SagaQueries.from_settings(store, cfg), cfg.metrics_port, cfg.metrics_host
        )
    except OSError as exc:
        raise ConfigError(
            f"setting alerts.metrics_port: cannot listen on {cfg.metrics_host}:"
            f"{cfg.metrics_port}: {exc}"
        ) from exc
    print(f"sagascope alert: saga metrics at {server.url}", flush=True)
    return server
