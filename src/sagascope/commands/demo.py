"""``sagascope demo``: ``sagascope serve`` plus demo traffic, everything local in one command.

Starts the embedded broker (unless ``--bootstrap-servers``), the store (embedded chDB unless
``--clickhouse-url``), the collector, the demo services and their traffic, the alerter and the
dashboard, all in this one process (the parts ``serve`` starts, through
:class:`~sagascope.commands.serve.OneMachine`). Prints one line per part; Ctrl-C or SIGTERM
stops everything, in reverse order, and joins every thread.

On a broker it did not start, the demo's topics, consumer groups and spans carry their own
prefix (``sagascope-demo.`` unless ``demo.topic_prefix`` says otherwise), its collector reads
those only, and it refuses to start when one of its topics holds records it did not write.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import resource
import sys
import threading
import time
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Any

from sagascope.commands._flags import setting_flag
from sagascope.commands.serve import with_setting
from sagascope.settings import DEFAULT_CONFIG_FILE, ENV_CONFIG_FILE, Settings, load_settings

log = logging.getLogger(__name__)

#: The demo configuration shipped with the package, used when no config file is given.
PACKAGED_CONFIG = "demo.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sagascope.commands.serve import add_machine_arguments
    from sagascope.demo_services import EXTERNAL_PREFIX

    setting_flag(parser, "--rate", setting="demo.rate", type=float, metavar="SAGAS_PER_S",
                 help="sagas started per second")
    setting_flag(parser, "--seed", setting="demo.seed", type=int, metavar="N",
                 help="seed of the traffic and faults")
    setting_flag(parser, "--max-sagas", setting="demo.max_sagas", type=int, metavar="N",
                 help="start at most N sagas, then keep running")
    setting_flag(parser, "--topic-prefix", setting="demo.topic_prefix", metavar="PREFIX",
                 help="prefix of the demo's topics and consumer groups "
                 f"(against --bootstrap-servers the default is {EXTERNAL_PREFIX!r})")
    add_machine_arguments(parser)
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


def _isolated(settings: Settings) -> Settings:
    """On a broker the demo did not start: its topics, groups and spans under its own prefix,
    and its collector reading those only, so nothing of the broker's other users is touched."""
    from sagascope.demo_services import EXTERNAL_PREFIX

    prefix = settings.demo.topic_prefix or EXTERNAL_PREFIX
    collector = settings.collector
    settings = with_setting(settings, "demo", topic_prefix=prefix)
    return with_setting(
        settings, "collector",
        include=f"^{re.escape(prefix)}.*",
        group_id=f"{prefix}{collector.group_id}",
        telemetry_topic=f"{prefix}{collector.telemetry_topic.lstrip('_')}",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sagascope.commands._connect import quiet_kafka_clients
    from sagascope.commands.serve import OneMachine, StopSignals, wait_for_stop
    from sagascope.connections import kafka_python_config
    from sagascope.demo_services import DemoRunner, demo_topics, foreign_topics
    from sagascope.embedded import EmbeddedBroker
    from sagascope.exceptions import ConfigError

    settings = _demo_settings(args, settings)
    quiet_kafka_clients(args.verbose)
    if args.duration < 0:
        raise ConfigError(f"--duration must be >= 0 seconds, got {args.duration}")
    stop = threading.Event()
    started = time.monotonic()
    with StopSignals(stop), ExitStack() as stack:
        machine = OneMachine("demo", settings, stack)
        machine.open_store()
        if settings.broker.bootstrap_servers:
            settings = _isolated(settings)
            clients = _client_configs(settings)
            foreign = foreign_topics(settings.broker.bootstrap_servers,
                                     demo_topics(settings.demo.topic_prefix),
                                     client_config=clients.kafka_python)
            if foreign:
                raise ConfigError(
                    "the demo will not write into topics that hold other records: "
                    + "; ".join(f"{name} ({why})" for name, why in sorted(foreign.items()))
                    + ". Give the demo another prefix with --topic-prefix"
                )
            machine.settings = settings
            machine.say_broker(settings.broker.bootstrap_servers,
                               f"topics {settings.demo.topic_prefix}* on the broker")
        else:
            broker = EmbeddedBroker().start()
            stack.callback(broker.stop)
            settings = with_setting(settings, "broker", bootstrap_servers=broker.bootstrap_servers)
            machine.settings = settings
            clients = _client_configs(settings)
            machine.say_broker(broker.bootstrap_servers, "embedded broker")
        bootstrap = settings.broker.bootstrap_servers

        # The dashboard first: a taken port fails fast, and the URL is there soonest.
        url = machine.serve_dashboard() if not args.no_dashboard else ""
        settings = machine.settings

        runner = DemoRunner(settings.demo, bootstrap,
                            telemetry_topic=settings.collector.telemetry_topic,
                            client_id=f"{settings.broker.client_id}-demo",
                            clients=clients)
        # Topics first, so the collector's pattern subscription sees them from the start.
        runner.start(traffic=False)
        stack.callback(_finish, runner, args.ground_truth, started)

        machine.start_collector(kafka_python_config(settings.broker), collector_id="demo")
        machine.serve_metrics()
        machine.start_alerter()

        assert runner.traffic is not None
        runner.traffic.start()
        stack.callback(runner.stop)
        machine.say(f"{settings.demo.rate:g} sagas/s over the four saga types; Ctrl-C to stop")
        first_stored = False

        def _tick() -> None:
            nonlocal first_stored
            if not first_stored:
                first_stored = _announce_first_saga(machine.store, runner, url, started)

        wait_for_stop(stop, args.duration, _tick)
        machine.say("stopping")
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
