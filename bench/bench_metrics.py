"""Benchmark of one Prometheus scrape of the saga metrics on a large embedded store.

Seeds ``--sagas`` sagas (default 1,000,000; about 9.4 messages each, the realistic mix of
``bench_queries.py``: orders that complete, fail, compensate or hang) straight into chDB with
``INSERT ... SELECT`` from ``numbers()``, plus collector progress and ``--alerts`` open alerts,
then times, interleaved so load on the machine hits each alike:

- ``SagaQueries.metrics()``: the query behind a scrape;
- a whole scrape over HTTP (``serve_saga_metrics``, snapshot cache off), text included;
- the baseline, measured in the same run: ``status_counts()``, the saga-state scan every
  dashboard page already runs; the scrape's cost is reported as a ratio to it and as the
  share of one core it takes at Prometheus's 15 s scrape interval.

    python bench/bench_metrics.py --sagas 1000000

Runs in its own chDB directory (a temporary one unless ``--path``).

Measured 2026-11-30 on the shared 2-core machine while other agents were loading it (load
average 20-40), 9,400,000 messages of 1,000,000 sagas, 5,000 open alerts, 15 interleaved runs
(as inserted / after ``OPTIMIZE FINAL``):

    exposition                       9.1 kB, 92 series
    status_counts() (baseline)  wall p50 1045 / 1008 ms   CPU p50 223 / 188 ms
    metrics() query             wall p50 2636 / 1973 ms   CPU p50 446 / 340 ms  (2.01x / 1.81x)
    scrape over HTTP            wall p50 2744 / 2178 ms   CPU p50 431 / 339 ms  (1.94x / 1.81x)
    CPU share at a 15 s scrape       2.9% / 2.3% of one core

What the scrape costs over the baseline is each saga's first message (``first_message`` of
``saga_state``), read for its cycle time; status and stalled step alone cost what the baseline
does. Earlier versions of the query, at 200,000 sagas: ``max(ingest_time)`` over ``messages``
for the newest message's age cost as much as the whole saga-state scan (now it comes from that
scan), and the histogram bucket by ``arrayFirstIndex`` with a lambda cost ~2x ``multiIf``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_queries import generate_sql, merge
from benchstore import fresh_store

from sagascope.alerter.saga_metrics import (
    SagaMetricsCollector,
    saga_metrics_registry,
)
from sagascope.queries import SagaQueries
from sagascope.store import ChdbStore

SCRAPE_INTERVAL_S = 15.0


def _seed(store: ChdbStore, sagas: int, alerts: int) -> None:
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    store.command(generate_sql(sagas, now.timestamp()))
    store.insert("progress", [
        {"group_id": "bench", "collector_id": "c", "topic": f"t{p}", "partition": p,
         "stored_offset": 0, "end_offset": 0, "read_until": now, "updated_at": now}
        for p in range(6)
    ])
    store.command(
        "INSERT INTO alerts SELECT toString(number), 'open', concat('ORD-', toString(number)), "
        "'order-fulfillment', 'RetrievePayment', '', {now:DateTime64(3, 'UTC')}, 300, "
        "{now:DateTime64(3, 'UTC')}, NULL, '', '', {now:DateTime64(3, 'UTC')} "
        "FROM numbers({alerts:UInt32})",
        {"now": (now - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], "alerts": alerts},
    )
    messages = store.query("SELECT count() FROM messages").scalar()
    stored = store.query("SELECT count() FROM saga_state FINAL").scalar()
    print(f"seeded {messages:,} messages of {stored:,} sagas, {alerts:,} open alerts "
          f"in {time.perf_counter() - t0:.1f} s")


def _scrape(url: str) -> int:
    with urllib.request.urlopen(url, timeout=60) as response:
        return len(response.read())


def _interleaved(
    cases: dict[str, Callable[[], Any]], runs: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of each case (chDB runs in this process, so its CPU counts)."""
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()  # warm up (query analysis caches, page cache)
    for _ in range(runs):
        for name, fn in cases.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return wall, cpu


def _measure(store: ChdbStore, runs: int, label: str) -> None:
    from prometheus_client import start_http_server

    queries = SagaQueries(store)
    collector = SagaMetricsCollector(queries, max_age_s=0)
    server, _ = start_http_server(0, addr="127.0.0.1", registry=saga_metrics_registry(collector))
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        size = _scrape(url)
        text = urllib.request.urlopen(url, timeout=60).read().decode()
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        times, cpu = _interleaved(
            {
                "status_counts() (baseline)": queries.status_counts,
                "metrics() query": queries.metrics,
                "scrape over HTTP": lambda: _scrape(url),
            },
            runs,
        )
    finally:
        server.shutdown()
        server.server_close()
    base = statistics.median(times["status_counts() (baseline)"])
    print(f"\n{label}: {runs} interleaved runs each; exposition {size:,} B, {series} series")
    base_cpu = statistics.median(cpu["status_counts() (baseline)"])
    for name, values in times.items():
        p50 = statistics.median(values)
        cpu_p50 = statistics.median(cpu[name])
        print(f"  {name:28} wall p50 {p50 * 1000:7.1f} ms (max {max(values) * 1000:7.1f}, "
              f"{p50 / base:4.2f}x baseline)  CPU p50 {cpu_p50 * 1000:7.1f} ms "
              f"({cpu_p50 / base_cpu:4.2f}x baseline; {cpu_p50 / SCRAPE_INTERVAL_S:6.2%} of a "
              "core at a 15 s scrape)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sagas", type=int, default=1_000_000)
    parser.add_argument("--alerts", type=int, default=5000, help="open alerts to seed")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--path", help="chDB directory (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    with fresh_store(args.path, "sagascope-bench-metrics-") as store:
        _seed(store, args.sagas, args.alerts)
        _measure(store, args.runs, "as inserted")
        merge(store, "saga_state", "alerts")
        _measure(store, args.runs, "after merges")
    return 0


if __name__ == "__main__":
    sys.exit(main())
