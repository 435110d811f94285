"""Cost of the instrumented producer against a bare ``KafkaProducer.send``, measured in one run.

    python bench/bench_producer.py [--bootstrap-servers HOST:PORT] [--messages 5000] [--rounds 15]

Variants, interleaved round by round (the order rotates), one shared ``KafkaProducer``,
300-byte JSON values, each timed as N sends plus the final flush, by wall clock and by the
process's CPU time (all threads: the sender thread too; robust when other processes share the
cores). Each round compares a variant with ``bare`` of the same round; the median of rounds:

- ``bare``: ``KafkaProducer.send(topic, value, key)``, no headers (the baseline).
- ``bare+10 static headers``: the same with a prebuilt list of 10 contract-sized headers; what
  kafka-python itself charges for carrying the contract, whoever builds it.
- ``instrumented``: ``InstrumentedProducer.send`` in a saga, no OpenTelemetry SDK configured.
- ``instrumented+sdk``: the same with an SDK ``TracerProvider`` sampling every trace and a
  ``BatchSpanProcessor`` (spans discarded by the exporter): PRODUCER spans recorded.
- ``stock otel``: opentelemetry-instrumentation-kafka-python with the same SDK provider
  (reference; skipped when the package is missing).

Prints µs per message, µs added over ``bare`` and the throughput ratio to ``bare``, plus the
library's own header-building cost without Kafka, and what ``saga_handler`` adds per record.
Starts the embedded broker when no bootstrap servers are given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from kafka import KafkaProducer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from sagascope.instrumentation import InstrumentedProducer, start_saga

VALUE = json.dumps({"order_id": "order-123456", "items": ["x" * 40] * 5, "note": "y" * 60}).encode()
KEY = b"order-123456"


class _DiscardingExporter(SpanExporter):
    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


def _static_headers() -> list[tuple[str, bytes]]:
    # The sizes of a real contract header set (UUIDv7 ids, RFC 3339 time, W3C traceparent).
    return [
        ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("ce_specversion", b"1.0"),
        ("ce_id", b"019a6c1e-7a8b-7c3d-9e0f-1a2b3c4d5e6f"),
        ("ce_source", b"orders"),
        ("ce_type", b"OrderPlaced"),
        ("ce_time", b"2026-11-22T10:15:30.123Z"),
        ("ce_kind", b"event"),
        ("ce_sagaid", b"order-123456"),
        ("ce_sagatype", b"order-fulfillment"),
        ("ce_causationid", b"019a6c1e-7a8b-7c3d-9e0f-1a2b3c4d5e70"),
    ]


def _time(send: Callable[[], Any], producer: KafkaProducer, n: int) -> tuple[float, float]:
    """(wall µs, process CPU µs) per message."""
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        send()
    producer.flush()
    return (
        (time.perf_counter() - start) / n * 1e6,
        (time.process_time() - start_cpu) / n * 1e6,
    )


def run(bootstrap_servers: str, messages: int, rounds: int, topic: str) -> dict[str, Any]:
    from sagascope.embedded import create_topics

    create_topics(bootstrap_servers, {topic: 1})
    kp = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=5)
    provider = TracerProvider()
    exporter = _DiscardingExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1_000_000))
    plain = InstrumentedProducer(kp, "orders", tracer_provider=None)
    traced = InstrumentedProducer(kp, "orders", tracer_provider=provider)
    static = _static_headers()
    try:
        from opentelemetry.instrumentation.kafka import KafkaInstrumentor

        stock: KafkaInstrumentor | None = KafkaInstrumentor()
    except ImportError:
        stock = None

    def bare() -> tuple[float, float]:
        return _time(lambda: kp.send(topic, VALUE, key=KEY), kp, messages)

    def bare_headers() -> tuple[float, float]:
        return _time(lambda: kp.send(topic, VALUE, key=KEY, headers=list(static)), kp, messages)

    def instrumented() -> tuple[float, float]:
        with start_saga("order-fulfillment", "order-123456"):
            return _time(lambda: plain.send(topic, VALUE, key=KEY, type="OrderPlaced"), kp, messages)

    def instrumented_sdk() -> tuple[float, float]:
        with start_saga("order-fulfillment", "order-123456", tracer_provider=provider):
            wall, cpu = _time(
                lambda: traced.send(topic, VALUE, key=KEY, type="OrderPlaced"), kp, messages
            )
        # Recording is part of the cost: drain the pending spans into the processor.
        start, start_cpu = time.perf_counter(), time.process_time()
        traced.flush()
        return (
            wall + (time.perf_counter() - start) / messages * 1e6,
            cpu + (time.process_time() - start_cpu) / messages * 1e6,
        )

    def stock_otel() -> tuple[float, float]:
        assert stock is not None
        stock.instrument(tracer_provider=provider)
        try:
            with provider.get_tracer("bench").start_as_current_span("request"):
                return _time(lambda: kp.send(topic, VALUE, key=KEY), kp, messages)
        finally:
            stock.uninstrument()

    variants: dict[str, Callable[[], tuple[float, float]]] = {
        "bare": bare,
        "bare+10 static headers": bare_headers,
        "instrumented": instrumented,
        "instrumented+sdk": instrumented_sdk,
    }
    if stock is not None:
        variants["stock otel"] = stock_otel
    for fn in variants.values():  # warm-up: connections, metadata, caches
        fn()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            results[name].append(variants[name]())
    provider.shutdown()
    kp.close()
    bare_rounds = results["bare"]
    figures: dict[str, Any] = {}
    for name, measured in results.items():
        figure: dict[str, Any] = {}
        for i, clock in enumerate(("wall", "cpu")):
            figure[f"{clock}_us"] = round(statistics.median(m[i] for m in measured), 2)
            figure[f"{clock}_added_us"] = round(
                statistics.median(m[i] - b[i] for m, b in zip(measured, bare_rounds, strict=True)), 2
            )
            figure[f"{clock}_ratio"] = round(
                statistics.median(b[i] / m[i] for m, b in zip(measured, bare_rounds, strict=True)), 3
            )
            figure[f"{clock}_rounds"] = [round(m[i], 1) for m in measured]
        figures[name] = figure
    return {"variants": figures, "exported_spans": exporter.exported}


def header_build_cost(n: int = 100_000, repeats: int = 5) -> float:
    """CPU µs per send spent in the library itself (send() to a producer that does nothing)."""

    class _NullProducer:
        config: dict[str, Any] = {}  # noqa: RUF012

        def send(self, *args: Any, **kwargs: Any) -> None:
            return None

    producer = InstrumentedProducer(_NullProducer(), "orders")
    costs = []
    with start_saga("order-fulfillment", "order-123456"):
        for _ in range(repeats):
            start = time.thread_time()
            for _ in range(n // repeats):
                producer.send("t", VALUE, key=KEY, type="OrderPlaced")
            costs.append((time.thread_time() - start) / (n // repeats) * 1e6)
    return statistics.median(costs)


def handler_cost(tracer_provider: Any = None, n: int = 20_000) -> float:
    """CPU µs the ``saga_handler`` decorator adds per handled record (no Kafka involved)."""
    from sagascope.instrumentation import saga_handler

    from sagascope.testing import consumer_record

    record = consumer_record("payments", VALUE, KEY, _static_headers(), offset=7)

    def plain(rec: Any) -> None:
        return None

    traced = saga_handler("payment", consumer_group="payment", tracer_provider=tracer_provider)(plain)
    costs = []
    for fn in (plain, traced):
        start = time.thread_time()
        for _ in range(n):
            fn(record)
        costs.append((time.thread_time() - start) / n * 1e6)
    return costs[1] - costs[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--topic", default="bench.producer")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        servers = args.bootstrap_servers
        if not servers:
            from sagascope.embedded import EmbeddedBroker

            servers = stack.enter_context(EmbeddedBroker()).bootstrap_servers
        figures = run(servers, args.messages, args.rounds, args.topic)
    library_us = header_build_cost()
    print(f"{args.messages} messages x {args.rounds} rounds, {len(VALUE)}-byte values; "
          "medians over rounds, each round against its own bare run")
    print(f"{'variant':<24} {'wall us':>8} {'added':>7} {'ratio':>6}   "
          f"{'cpu us':>7} {'added':>7} {'ratio':>6}")
    for name, f in figures["variants"].items():
        print(f"{name:<24} {f['wall_us']:>8.2f} {f['wall_added_us']:>7.2f} {f['wall_ratio']:>5.2f}x"
              f"   {f['cpu_us']:>7.2f} {f['cpu_added_us']:>7.2f} {f['cpu_ratio']:>5.2f}x")
    print(f"library header building alone (no Kafka, cpu): {library_us:.2f} us/send")
    sdk = TracerProvider()
    sdk.add_span_processor(BatchSpanProcessor(_DiscardingExporter(), max_queue_size=1_000_000))
    handler_us = {"no sdk": handler_cost(None), "sdk": handler_cost(sdk)}
    sdk.shutdown()
    print(f"saga_handler per record (cpu): {handler_us['no sdk']:.2f} us without an SDK, "
          f"{handler_us['sdk']:.2f} us with CONSUMER spans recorded")
    print(f"PRODUCER spans exported by the sdk variant: {figures['exported_spans']}")
    if args.json:
        print(json.dumps({**figures, "library_us": round(library_us, 2), "handler_us": handler_us}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
