"""The collector's Prometheus metrics: one registry per collector, served over HTTP on request."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

_PREFIX = "sagascope_collector"


class CollectorMetrics:
    """Counters and gauges of one collector; ``value(name)`` reads them back (tests, CLI)."""

    def __init__(self, collector_id: str = "") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.consumed = Counter(
            f"{_PREFIX}_consumed", "Records read from Kafka", ["topic"], registry=reg
        )
        self.stored = Counter(
            f"{_PREFIX}_stored", "Records stored (messages and spans)", ["topic"], registry=reg
        )
        self.parse_errors = Counter(
            f"{_PREFIX}_parse_errors", "Records stored with a parse error", ["topic"], registry=reg
        )
        self.errors = Counter(
            f"{_PREFIX}_errors",
            "Failures by kind: store, commit, broker, position, decode",
            ["kind"],
            registry=reg,
        )
        self.lag = Gauge(
            f"{_PREFIX}_lag", "Records in Kafka not yet stored", ["topic", "partition"], registry=reg
        )
        self.stored_offset = Gauge(
            f"{_PREFIX}_stored_offset",
            "Next offset to store (everything below is stored)",
            ["topic", "partition"],
            registry=reg,
        )
        self.batch_seconds = Histogram(
            f"{_PREFIX}_batch_seconds",
            "Time to store one batch (insert and commit)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=reg,
        )
        self.batch_rows = Histogram(
            f"{_PREFIX}_batch_rows",
            "Rows per stored batch",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 50000),
            registry=reg,
        )
        self.store_available = Gauge(
            f"{_PREFIX}_store_available", "1 while the store accepts writes", registry=reg
        )
        self.assigned_partitions = Gauge(
            f"{_PREFIX}_assigned_partitions", "Partitions assigned to this collector", registry=reg
        )
        self.rebalances = Counter(
            f"{_PREFIX}_rebalances", "Partition assignments received", registry=reg
        )
        self.store_available.set(1)
        self._server: Any = None

    def count(self, counter: Counter, by_topic: Mapping[str, int]) -> None:
        for topic, n in by_topic.items():
            if n:
                counter.labels(topic).inc(n)

    def value(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples matching ``labels``; ``name`` without the prefix.

        Counters are read by their ``_total`` sample, histograms by their ``_count``.
        """
        full = f"{_PREFIX}_{name}"
        total = 0.0
        for family in self.registry.collect():
            if family.name != full:
                continue
            for sample in family.samples:
                if sample.name not in (full, f"{full}_total", f"{full}_count"):
                    continue
                if all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``port`` (0 picks a free one); returns the port."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server = server
        bound = int(server.server_address[1])
        log.info("metrics endpoint http://%s:%d/metrics", addr, bound)
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
