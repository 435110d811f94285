"""Runs the demo: creates the topics, starts every service and the traffic, stops them all.

Every service is its own consumer group in a thread of this one process (the embedded chDB
store allows one process, and the demo shares it with the collector and dashboard).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import replace
from typing import Any

from kafka import KafkaProducer
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from sagascope.demo_services import _topics as t
from sagascope.demo_services._faults import ServiceFaultConfig, resolve_faults
from sagascope.demo_services._runtime import ClientConfigs, DemoService, ServiceEnv
from sagascope.demo_services.airline import Airline
from sagascope.demo_services.customer import Customer
from sagascope.demo_services.ground_truth import GroundTruth
from sagascope.demo_services.hotel import Hotel
from sagascope.demo_services.inventory import Inventory
from sagascope.demo_services.legacy_warehouse import LegacyWarehouse
from sagascope.demo_services.notification import Notification
from sagascope.demo_services.order_orchestrator import OrderOrchestrator
from sagascope.demo_services.order_service import OrderService
from sagascope.demo_services.payment import Payment
from sagascope.demo_services.shipping import Shipping
from sagascope.demo_services.traffic import TrafficGenerator
from sagascope.demo_services.travel_agency import TravelAgency
from sagascope.embedded import create_topics
from sagascope.instrumentation import DEFAULT_TELEMETRY_TOPIC, KafkaSpanExporter
from sagascope.settings import DemoSettings

log = logging.getLogger(__name__)

SERVICES: tuple[type[DemoService], ...] = (
    OrderOrchestrator, OrderService, Payment, Customer, Inventory, LegacyWarehouse, Shipping,
    Notification, TravelAgency, Airline, Hotel,
)


class DemoRunner:
    """The demo services and traffic generator of one run.

    Args:
        settings: the ``[demo]`` settings (rate, seed, faults, prefix).
        bootstrap_servers: the Kafka cluster to run on.
        telemetry_topic: where handler and producer spans go (the collector's telemetry topic).
        clients: TLS/SASL settings for each Kafka client (from ``sagascope.connections``).
    """

    def __init__(self, settings: DemoSettings, bootstrap_servers: str, *,
                 telemetry_topic: str = DEFAULT_TELEMETRY_TOPIC,
                 client_id: str = "sagascope-demo", clients: ClientConfigs | None = None) -> None:
        if not bootstrap_servers:
            from sagascope.exceptions import ConfigError

            raise ConfigError("the demo needs broker.bootstrap_servers (or the embedded broker)")
        _check(settings)
        self.settings = replace(settings, run_id=settings.run_id or secrets.token_hex(2))
        self.bootstrap_servers = bootstrap_servers
        self.telemetry_topic = telemetry_topic
        self.client_id = client_id
        self.clients = clients or ClientConfigs()
        self.ground_truth = GroundTruth(self.faults_of)
        self._faults: dict[str, ServiceFaultConfig] = {}
        self.services: list[DemoService] = []
        self.traffic: TrafficGenerator | None = None
        self._producer: Any = None
        self._tracer_provider: TracerProvider | None = None
        self._started = False

    def faults_of(self, service: str) -> ServiceFaultConfig:
        """The resolved fault settings of ``service``."""
        if service not in self._faults:
            self._faults[service] = resolve_faults(self.settings, service)
        return self._faults[service]

    @property
    def topics(self) -> list[str]:
        return [t.topic(self.settings.topic_prefix, name) for name in t.ALL_TOPICS]

    def start(self, *, traffic: bool = True, ready_timeout_s: float = 0.0) -> DemoRunner:
        """Create the topics, start the services and (unless ``traffic=False``) the traffic.

        With ``ready_timeout_s`` > 0, wait until every service owns its partitions first.
        """
        create_topics(self.bootstrap_servers,
                      {**{name: self.settings.partitions for name in self.topics},
                       self.telemetry_topic: 1},
                      client_config=self.clients.kafka_python)
        self._producer = KafkaProducer(**{
            **self.clients.kafka_python, "bootstrap_servers": self.bootstrap_servers,
            "client_id": f"{self.client_id}-traffic", "linger_ms": 5,
        })
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "sagascope-demo"}))
        provider.add_span_processor(BatchSpanProcessor(
            KafkaSpanExporter(self._producer, self.telemetry_topic), schedule_delay_millis=500,
        ))
        self._tracer_provider = provider
        self._started = True
        for service_type in SERVICES:
            env = ServiceEnv(
                bootstrap_servers=self.bootstrap_servers,
                topic_prefix=self.settings.topic_prefix,
                faults=self.faults_of(service_type.name),
                settings=self.settings,
                tracer_provider=provider,
                client_id=self.client_id,
                clients=self.clients,
            )
            service = service_type(env)
            self.services.append(service)
            service.start()
        if ready_timeout_s > 0:
            self.wait_ready(ready_timeout_s)
        self.traffic = TrafficGenerator(
            self.settings, self._producer, self.ground_truth,
            topic_prefix=self.settings.topic_prefix, run_id=self.settings.run_id,
            tracer_providers={client: provider for client in
                              ("storefront", "checkout", "shop", "travel-portal")},
        )
        if traffic:
            self.traffic.start()
        log.info("demo started: %d services, %.1f sagas/s, run %s", len(self.services),
                 self.settings.rate, self.settings.run_id)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until every service's consumer owns its partitions.

        Raises:
            TimeoutError: naming the services that are not ready.
        """
        deadline = time.monotonic() + timeout_s
        for service in self.services:
            if not service.wait_ready(max(0.0, deadline - time.monotonic())):
                missing = [s.name for s in self.services if not s.wait_ready(0)]
                raise TimeoutError(f"demo services not ready after {timeout_s:.0f} s: {missing}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the traffic, then every service; flush the spans. Safe to call twice."""
        if not self._started:
            return
        self._started = False
        if self.traffic is not None:
            self.traffic.stop()
            self.traffic.join(timeout_s)
        for service in self.services:
            service.stop()
        for service in self.services:
            service.join(timeout_s)
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
        if self._producer is not None:
            self._producer.flush(10)
            self._producer.close(10)
        log.info("demo stopped after %d sagas", len(self.ground_truth))

    def __enter__(self) -> DemoRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check(settings: DemoSettings) -> None:
    """Fail at start-up, naming the setting, before any thread runs."""
    from sagascope.exceptions import ConfigError

    checks = (
        ("rate", settings.rate > 0, "> 0 sagas per second"),
        ("partitions", settings.partitions >= 1, ">= 1"),
        ("max_sagas", settings.max_sagas >= 0, ">= 0"),
        ("card_update_wait_s", settings.card_update_wait_s >= 0, ">= 0"),
        ("latency_ms", settings.latency_ms >= 0, ">= 0"),
        ("max_poll_interval_ms", settings.max_poll_interval_ms >= 1000, ">= 1000"),
        ("failure_rate", 0 <= settings.failure_rate <= 1, "within [0, 1]"),
    )
    for name, ok, rule in checks:
        if not ok:
            raise ConfigError(f"setting demo.{name} must be {rule}, got {getattr(settings, name)!r}")
    if "-" in settings.run_id or not all(c.isalnum() for c in settings.run_id):
        raise ConfigError(f"setting demo.run_id must be letters and digits, got {settings.run_id!r}")
    known = ("storefront", "checkout", "shop", "travel-portal", *(s.name for s in SERVICES))
    for override in settings.service_faults:
        if override.service not in known:
            raise ConfigError(f"setting demo.service_faults names unknown service "
                              f"{override.service!r}; choose from {', '.join(known)}")
    for name in known:
        resolve_faults(settings, name)

