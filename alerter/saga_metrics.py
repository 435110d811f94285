"""Saga metrics for Prometheus: a custom collector over the query layer, served on ``/metrics``.

Each scrape asks the store once (``SagaQueries.metrics``; a snapshot younger than
``max_age_s`` is reused, so two Prometheus replicas scraping every 15 s cost one query) and
turns the answer into metric families with prometheus-client:

==============================================  =========  =================================
``sagascope_sagas``                              gauge      ``saga_type``, ``status``
``sagascope_sagas_stalled``                      gauge      ``saga_type``, ``step``
``sagascope_sagas_started_total``                counter    ``saga_type``
``sagascope_sagas_finished_total``               counter    ``saga_type``, ``outcome``
``sagascope_saga_cycle_time_seconds``            histogram  ``saga_type``
``sagascope_alerts_open``                        gauge      ``saga_type``
``sagascope_alerts_silenced``                    gauge      ``saga_type``
``sagascope_newest_message_age_seconds``         gauge
``sagascope_collector_watermark_age_seconds``    gauge      (only with collector progress)
``sagascope_saga_metrics_up``                    gauge      1 when the store answered
``sagascope_saga_metrics_query_seconds``         gauge      time the store took
==============================================  =========  =================================

The counters and the histogram are counts of sagas in the store, not of events this process
saw: they only grow with the store, and a restarted alerter carries on from the same totals
instead of starting from zero, so ``rate()`` and ``increase()`` see no reset (and two alerters
on one store expose the same values). A saga can leave a count it was in (a failed saga
later compensating leaves ``outcome="failed"``; a finished saga heard from again may move
up a bucket): the collector never lets an exposed counter go down, it holds the highest value
it exposed until the store catches up. Labels are bounded: saga types, statuses, steps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sagascope.queries import SagaQueries
from sagascope.queries.metrics import CycleTimeBuckets, SagaMetrics

log = logging.getLogger(__name__)

__all__ = ["MetricsServer", "SagaMetricsCollector", "saga_metrics_registry", "serve_saga_metrics"]

PREFIX = "sagascope"


class SagaMetricsCollector(Collector):
    """Builds the saga metric families from ``SagaQueries.metrics()`` on each scrape.

    Args:
        queries: the query layer; a callable returning one is asked on every scrape (the
            alerter's stall thresholds can change while it runs).
        max_age_s: reuse a snapshot younger than this instead of asking the store again.
        clock: monotonic clock (injectable for tests of the cache).
    """

    def __init__(
        self,
        queries: SagaQueries | Callable[[], SagaQueries],
        *,
        max_age_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queries = queries
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: tuple[float, SagaMetrics, float] | None = None
        #: The highest value each counter sample was exposed with: (sample name, labels).
        self._high: dict[tuple[str, tuple[str, ...]], float] = {}
        self.failed_scrapes = 0

    def describe(self) -> list[Metric]:
        # Registering must not query the store (prometheus-client calls collect() otherwise).
        return []

    def _read(self) -> tuple[SagaMetrics, float]:
        with self._lock:
            now = self._clock()
            if self._snapshot is not None and now - self._snapshot[0] < self.max_age_s:
                return self._snapshot[1], self._snapshot[2]
            queries = self._queries() if callable(self._queries) else self._queries
            started = time.perf_counter()
            snapshot = queries.metrics()
            took = time.perf_counter() - started
            self._snapshot = (now, snapshot, took)
            return snapshot, took

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_saga_metrics_up", "1 when the store answered the saga metrics query"
        )
        try:
            snapshot, took = self._read()
        except Exception as exc:
            # A scrape must still answer (Prometheus shows the store down, not the target).
            self.failed_scrapes += 1
            log.warning("saga metrics: the store did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        query = GaugeMetricFamily(
            f"{PREFIX}_saga_metrics_query_seconds", "Seconds the saga metrics query took"
        )
        query.add_metric([], took)
        yield query
        with self._lock:
            yield from self._families(snapshot)

    def _families(self, m: SagaMetrics) -> Iterator[Metric]:
        yield _gauge(
            f"{PREFIX}_sagas", "Sagas in the store by saga type and status",
            ["saga_type", "status"], m.sagas,
        )
        yield _gauge(
            f"{PREFIX}_sagas_stalled",
            "Unfinished sagas silent past their threshold, by saga type and the step they are "
            "stalled after",
            ["saga_type", "step"], m.stalled,
        )
        started = CounterMetricFamily(
            f"{PREFIX}_sagas_started", "Sagas stored (started), by saga type", labels=["saga_type"]
        )
        started_now: dict[tuple[str, ...], float] = {(t,): n for t, n in m.started.items()}
        for (saga_type,), count in self._with_held(started.name, started_now):
            started.add_metric([saga_type], self._monotonic(started.name, (saga_type,), count))
        yield started
        finished = CounterMetricFamily(
            f"{PREFIX}_sagas_finished",
            "Sagas finished, by saga type and outcome (completed, failed, compensated)",
            labels=["saga_type", "outcome"],
        )
        finished_now: dict[tuple[str, ...], float] = dict(m.finished.items())
        for (saga_type, outcome), count in self._with_held(finished.name, finished_now):
            finished.add_metric(
                [saga_type, outcome], self._monotonic(finished.name, (saga_type, outcome), count)
            )
        yield finished
        yield self._cycle_times(m)
        yield _gauge(
            f"{PREFIX}_alerts_open", "Open stalled-saga alerts by saga type, silenced ones apart",
            ["saga_type"], m.open_alerts,
        )
        yield _gauge(
            f"{PREFIX}_alerts_silenced", "Open stalled-saga alerts of silenced groups",
            ["saga_type"], m.silenced_alerts,
        )
        if m.now is not None:
            newest = GaugeMetricFamily(
                f"{PREFIX}_newest_message_age_seconds",
                "Seconds since the Kafka time of the newest stored saga message (a stalled "
                "collector makes it grow)",
            )
            if m.newest_message is not None:
                newest.add_metric([], max(0.0, (m.now - m.newest_message).total_seconds()))
            yield newest
            if m.watermark is not None:
                watermark = GaugeMetricFamily(
                    f"{PREFIX}_collector_watermark_age_seconds",
                    "Seconds the collector's watermark (everything before it is stored) is behind",
                )
                watermark.add_metric([], max(0.0, (m.now - m.watermark).total_seconds()))
                yield watermark

    def _cycle_times(self, m: SagaMetrics) -> Metric:
        family = HistogramMetricFamily(
            f"{PREFIX}_saga_cycle_time_seconds",
            "Cycle time of finished sagas (first to last message, event time), by saga type",
            labels=["saga_type"],
        )
        bounds = [_le(b) for b in m.bounds_s] + ["+Inf"]
        held = self._with_held(f"{family.name}_sum", {})
        for saga_type in sorted(set(m.cycle_times) | {labels[0] for labels, _ in held}):
            hist = m.cycle_times.get(saga_type) or CycleTimeBuckets([0] * len(bounds))
            name = f"{family.name}_bucket"
            cumulative = [
                self._monotonic(name, (saga_type, le), n)
                for le, n in zip(bounds, hist.cumulative(), strict=True)
            ]
            total = self._monotonic(f"{family.name}_sum", (saga_type,), hist.sum_s)
            family.add_metric([saga_type], list(zip(bounds, cumulative, strict=True)), total)
        return family

    def _with_held(
        self, name: str, values: Mapping[tuple[str, ...], float]
    ) -> list[tuple[tuple[str, ...], float]]:
        """``values`` plus, at 0, every series of ``name`` exposed before and now absent.

        A counter series must not vanish while the store has no saga in it for a while (the
        last failed saga compensating): it keeps its highest value, as counters do.
        """
        out = dict(values)
        for held_name, labels in self._high:
            if held_name == name:
                out.setdefault(labels, 0)
        return sorted(out.items())

    def _monotonic(self, name: str, labels: tuple[str, ...], value: float) -> float:
        key = (name, labels)
        high = max(self._high.get(key, value), value)
        self._high[key] = high
        return high


def _le(bound: float) -> str:
    return f"{bound:g}" if bound != int(bound) else f"{int(bound)}.0"


def saga_metrics_registry(collector: SagaMetricsCollector) -> CollectorRegistry:
    """A registry holding only the saga metrics (not the process metrics of the default one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry



def _gauge(
    name: str, documentation: str, labels: list[str], counts: Mapping[Any, int]
) -> GaugeMetricFamily:
    """One sample per key of ``counts``, in key order; a key is the label values (a tuple) or,
    for one label, its value."""
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key, n in sorted(counts.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], n)
    return family

@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; ``close()`` stops it."""

    host: str
    port: int
    _server: Any

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_saga_metrics(
    queries: SagaQueries | Callable[[], SagaQueries],
    port: int,
    host: str = "127.0.0.1",
) -> MetricsServer:
    """Serve the saga metrics on ``http://host:port/metrics`` (port 0 picks a free one).

    Raises:
        OSError: when the port cannot be bound.
    """
    from prometheus_client import start_http_server

    registry = saga_metrics_registry(SagaMetricsCollector(queries))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    bound = MetricsServer(host, int(server.server_address[1]), server)
    log.info("saga metrics endpoint %s", bound.url)
    return bound
