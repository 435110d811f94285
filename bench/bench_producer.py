"""Cost of the instrumented producer on each Kafka client against its bare send, in one run.

    python bench/bench_producer.py [--bootstrap-servers HOST:PORT] [--messages 5000] [--rounds 11]
                                   [--clients kafka-python,confluent-kafka,aiokafka] [--json]

For each client (kafka-python's ``KafkaProducer.send``, confluent-kafka's ``Producer.produce``,
aiokafka's ``await AIOKafkaProducer.send``), variants interleaved round by round (the order
rotates), one producer per client, 300-byte JSON values, each timed as N sends plus the final
flush by the process's CPU time (all threads: the clients' sender threads too, so what a
client does in the background counts; robust when other processes share the cores):

- ``bare``: the client's send, no headers (the baseline).
- ``bare+headers``: the same carrying the headers an instrumented send of this run writes
  (captured once, copied per send): what the client itself charges for carrying the
  contract, whoever builds it.
- ``instrumented``: ``InstrumentedProducer.send`` in a saga, no OpenTelemetry SDK.
- ``instrumented+sdk``: the same with an SDK ``TracerProvider`` sampling every trace and a
  ``BatchSpanProcessor`` (spans discarded by the exporter): PRODUCER spans recorded, drained
  and exported inside the variant's timing (so does ``stock otel``).
- ``prebuilt``: the client's send carrying the headers of an instrumented send, each send its
  own, built before the clock.
- ``floor``: ``prebuilt`` with the PRODUCER span of each send, made before the clock, handed to
  the span processors: ``floor`` minus ``prebuilt`` is what recording a span per send costs in
  this client's process even when making the span is free.
- ``stock otel``: that client's stock OpenTelemetry instrumentation with the same provider.

Every variant starts from a collected heap (``gc.collect()`` outside the timing): otherwise a
full collection, 25–30 ms in this process, lands on whichever variant happens to be running
when the garbage of the ones before it reaches the threshold.

Each round compares a variant with ``bare`` of the same round; printed are medians over
rounds: µs per send, µs added over ``bare``, and the throughput ratio to ``bare``. Then the
targets: our own work (``instrumented+sdk`` minus ``bare+headers``, and the library alone:
``InstrumentedProducer.send`` over a client that does nothing, by thread CPU time) at most
10 µs per send, and what we add at most half of what the stock instrumentation adds, on
every client.
Starts the embedded broker when no bootstrap servers are given.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from sagascope.instrumentation import InstrumentedProducer, start_saga

VALUE = json.dumps({"order_id": "order-123456", "items": ["x" * 40] * 5, "note": "y" * 60}).encode()
KEY = b"order-123456"
CLIENTS = ("kafka-python", "confluent-kafka", "aiokafka")
OWN_WORK_TARGET_US = 10.0


class DiscardingExporter(SpanExporter):
    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


def contract_headers() -> list[tuple[str, bytes]]:
    """The headers ``InstrumentedProducer.send`` writes in the benched saga, captured once.

    Same keys, same order, same value sizes as every instrumented send of the run (the ids
    differ, not their lengths), so ``bare+headers`` charges exactly what the client charges
    to carry our headers, and ``instrumented`` minus it is our own work.
    """
    captured: list[list[tuple[str, bytes]]] = []

    class Capturing:
        config: dict[str, Any] = {}  # noqa: RUF012

        def send(self, *args: Any, headers: list[tuple[str, bytes]], **kwargs: Any) -> None:
            captured.append(headers)

    with start_saga("order-fulfillment", "order-123456"):
        InstrumentedProducer(Capturing(), service="orders", tracer_provider=None).send(
            "t", VALUE, KEY, type="OrderPlaced")
    return captured[0]


def _ignore(span: Any) -> None:
    return None


def prebuilt(
    count: int, topic: str, provider: TracerProvider
) -> tuple[list[list[tuple[str, bytes]]], list[Any]]:
    """The headers and PRODUCER spans of ``count`` instrumented sends, made now, for ``floor``."""
    headers: list[list[tuple[str, bytes]]] = []
    spans: list[Any] = []

    class Keeping:
        config: dict[str, Any] = {}  # noqa: RUF012

        def send(self, *args: Any, **kwargs: Any) -> None:
            headers.append(kwargs["headers"])

    class KeepingProcessor(SpanProcessor):
        def on_end(self, span: Any) -> None:
            if span.kind is SpanKind.PRODUCER:
                spans.append(span)

    making = TracerProvider(resource=provider.resource)
    making.add_span_processor(KeepingProcessor())
    producer = InstrumentedProducer(Keeping(), service="orders", tracer_provider=making)
    with start_saga("order-fulfillment", "order-123456", tracer_provider=making):
        for _ in range(count):
            producer.send(topic, VALUE, KEY, type="OrderPlaced")
    producer._spans.drain()
    return headers, spans


#: A variant: runs N sends plus the flush, returns CPU µs per message.
Variant = Callable[[], float]


class ClientBench:
    """The five variants of one client; subclasses say how that client sends and flushes."""

    name = ""
    #: The client's stock OpenTelemetry instrumentor (module, class), one that wraps the
    #: client's class; confluent-kafka's wraps a producer instead and overrides :meth:`stock`.
    stock_instrumentor = ("", "")

    def __init__(self, servers: str, topic: str, messages: int, provider: TracerProvider) -> None:
        self.servers, self.topic, self.messages, self.provider = servers, topic, messages, provider
        self.producer = self.make_producer()
        self.plain = InstrumentedProducer(self.producer, service="orders", tracer_provider=None)
        self.traced = InstrumentedProducer(self.producer, service="orders", tracer_provider=provider)

    def make_producer(self) -> Any:
        raise NotImplementedError

    def run_sends(self, send: Callable[[], Any]) -> float:
        """CPU µs per message for N calls of ``send``, the flush and the spans' export."""
        gc.collect()  # each variant starts from a collected heap: see the module's docstring
        start = time.process_time()
        for _ in range(self.messages):
            send()
        self.producer.flush()
        self.export_spans()
        return (time.process_time() - start) / self.messages * 1e6

    def export_spans(self) -> None:
        """Every variant pays for exporting its own spans, inside its own timing.

        Pending PRODUCER spans go to the processor, and the ``BatchSpanProcessor`` exports
        its queue now: otherwise its worker thread would export a variant's spans while the
        next variant is being timed (the process's CPU time counts every thread). A no-op
        for the variants that record no spans.
        """
        self.traced._spans.drain()
        self.provider.force_flush()

    def bare_send(self, headers: list[tuple[str, bytes]] | None) -> Callable[[], Any]:
        """The client's own send of the bench's record (kafka-python's and aiokafka's
        ``send``; confluent-kafka overrides it with ``produce``)."""
        send, topic = self.producer.send, self.topic
        if headers is None:
            return lambda: send(topic, VALUE, key=KEY)
        return lambda: send(topic, VALUE, key=KEY, headers=list(headers))

    def send_with(self) -> Callable[[list[tuple[str, bytes]]], Any]:
        """The client's send of the bench's record with the headers given at each call."""
        send, topic = self.producer.send, self.topic
        return lambda headers: send(topic, VALUE, key=KEY, headers=headers)

    def stock(self) -> Variant | None:
        """The ``stock otel`` variant; None where that instrumentation is not installed."""
        module, name = self.stock_instrumentor
        try:
            instrumentor = getattr(importlib.import_module(module), name)()
        except ImportError:
            return None

        def stock_otel() -> float:
            instrumentor.instrument(tracer_provider=self.provider)
            try:
                # The wrapper is on the class: look the send up while it is instrumented.
                return self.run_sends_in_request(self.bare_send(None))
            finally:
                instrumentor.uninstrument()

        return stock_otel

    def close(self) -> None:
        raise NotImplementedError

    def run_sends_in_request(self, send: Callable[[], Any]) -> float:
        """:meth:`run_sends` inside an SDK span, as a request handler sends: the stock
        instrumentations make each PRODUCER span a child of the current one."""
        with self.provider.get_tracer("bench").start_as_current_span("request"):
            return self.run_sends(send)

    def floor(self, spans: bool = True) -> float:
        """The ``floor`` variant: what an instrumented send costs here if building it is free.

        Each send carries the headers of its own instrumented send and hands the PRODUCER
        span of that send to the span processors, in the sending thread, but both were made
        before the clock started (by ``InstrumentedProducer`` itself, over a client that only
        keeps what it is given). What ``floor`` adds over ``bare+headers`` is the least an
        instrumentation that records a span per message can cost in this client's process.
        Without ``spans`` (the ``prebuilt`` variant), the same loop with the headers only:
        ``floor`` minus ``prebuilt`` is the SDK's processing of the spans alone.
        """
        headers, made = prebuilt(self.messages, self.topic, self.provider)
        send, on_end = self.send_with(), self.provider._active_span_processor.on_end
        pairs = iter(zip(headers, made, strict=True))
        if not spans:
            on_end = _ignore

        def one() -> Any:
            carried, span = next(pairs)
            sent = send(carried)
            on_end(span)
            return sent

        return self.run_sends(one)

    def variants(self) -> dict[str, Variant]:
        static = contract_headers()
        topic = self.topic

        def instrumented() -> float:
            with start_saga("order-fulfillment", "order-123456"):
                return self.run_sends(
                    lambda: self.plain.send(topic, VALUE, KEY, type="OrderPlaced"))

        def instrumented_sdk() -> float:
            with start_saga("order-fulfillment", "order-123456", tracer_provider=self.provider):
                return self.run_sends(
                    lambda: self.traced.send(topic, VALUE, KEY, type="OrderPlaced"))

        found: dict[str, Variant] = {
            "bare": lambda: self.run_sends(self.bare_send(None)),
            "bare+headers": lambda: self.run_sends(self.bare_send(static)),
            "instrumented": instrumented,
            "instrumented+sdk": instrumented_sdk,
            "prebuilt": lambda: self.floor(spans=False),
            "floor": self.floor,
        }
        stock = self.stock()
        if stock is not None:
            found["stock otel"] = stock
        return found


class KafkaPythonBench(ClientBench):
    name = "kafka-python"
    stock_instrumentor = ("opentelemetry.instrumentation.kafka", "KafkaInstrumentor")

    def make_producer(self) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(bootstrap_servers=self.servers, linger_ms=5)

    def close(self) -> None:
        self.producer.close(10)


class ConfluentBench(ClientBench):
    name = "confluent-kafka"

    def make_producer(self) -> Any:
        from confluent_kafka import Producer

        return Producer({"bootstrap.servers": self.servers, "linger.ms": 5, "log_level": 3})

    def bare_send(self, headers: list[tuple[str, bytes]] | None) -> Callable[[], Any]:
        produce, topic = self.producer.produce, self.topic
        if headers is None:
            return lambda: produce(topic, VALUE, KEY)
        return lambda: produce(topic, VALUE, KEY, headers=list(headers))

    def send_with(self) -> Callable[[list[tuple[str, bytes]]], Any]:
        produce, topic = self.producer.produce, self.topic
        return lambda headers: produce(topic, VALUE, KEY, headers=headers)

    def stock(self) -> Variant | None:
        try:
            from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor
        except ImportError:
            return None
        proxy = ConfluentKafkaInstrumentor.instrument_producer(
            self.producer, tracer_provider=self.provider
        )
        topic = self.topic
        return lambda: self.run_sends_in_request(lambda: proxy.produce(topic, value=VALUE, key=KEY))

    def close(self) -> None:
        self.producer.flush(10)


class AiokafkaBench(ClientBench):
    name = "aiokafka"
    stock_instrumentor = ("opentelemetry.instrumentation.aiokafka", "AIOKafkaInstrumentor")

    def make_producer(self) -> Any:
        from aiokafka import AIOKafkaProducer

        self.loop = asyncio.new_event_loop()

        async def started() -> Any:
            producer = AIOKafkaProducer(bootstrap_servers=self.servers, linger_ms=5)
            await producer.start()
            return producer

        return self.loop.run_until_complete(started())

    def run_sends(self, send: Callable[[], Any]) -> float:
        async def sends() -> None:
            for _ in range(self.messages):
                await send()
            await self.producer.flush()

        gc.collect()
        start = time.process_time()
        self.loop.run_until_complete(sends())
        self.export_spans()
        return (time.process_time() - start) / self.messages * 1e6

    def close(self) -> None:
        self.loop.run_until_complete(self.producer.stop())
        self.loop.close()


class _NullKafkaPython:
    """Takes kafka-python's send and does nothing: what is left is the library's own work."""

    config: dict[str, Any] = {}  # noqa: RUF012

    def send(self, *args: Any, **kwargs: Any) -> None:
        return None


class _NullConfluent:
    """Recognised as confluent-kafka by its ``produce``."""

    def produce(self, *args: Any, **kwargs: Any) -> None:
        return None


class _NullAiokafka:
    """Recognised as aiokafka by its coroutine ``send``."""

    async def send(self, *args: Any, **kwargs: Any) -> None:
        return None


def library_cost(client: str, provider: TracerProvider, n: int = 20_000, repeats: int = 5) -> float:
    """Thread CPU µs per send spent in ``InstrumentedProducer.send`` alone (PRODUCER spans on)."""
    null = {"kafka-python": _NullKafkaPython, "confluent-kafka": _NullConfluent,
            "aiokafka": _NullAiokafka}[client]()
    producer = InstrumentedProducer(null, service="orders", tracer_provider=provider)
    loop = asyncio.new_event_loop()

    async def awaited(count: int) -> None:
        for _ in range(count):
            await producer.send("t", VALUE, KEY, type="OrderPlaced")

    costs = []
    with start_saga("order-fulfillment", "order-123456", tracer_provider=provider):
        for _ in range(repeats):
            start = time.thread_time()
            if client == "aiokafka":
                loop.run_until_complete(awaited(n // repeats))
            else:
                for _ in range(n // repeats):
                    producer.send("t", VALUE, KEY, type="OrderPlaced")
            producer._spans.drain()
            costs.append((time.thread_time() - start) / (n // repeats) * 1e6)
    loop.close()
    return round(statistics.median(costs), 2)


BENCHES: dict[str, type[ClientBench]] = {
    b.name: b for b in (KafkaPythonBench, ConfluentBench, AiokafkaBench)
}


def measure(bench: ClientBench, rounds: int) -> dict[str, Any]:
    variants = bench.variants()
    for fn in variants.values():  # warm-up: connections, metadata, caches
        fn()
    results: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            results[name].append(variants[name]())
    bare = results["bare"]
    figures: dict[str, Any] = {}
    for name, measured in results.items():
        figures[name] = {
            "cpu_us": round(statistics.median(measured), 2),
            "added_us": round(statistics.median(m - b for m, b in zip(measured, bare, strict=True)), 2),
            "ratio": round(statistics.median(b / m for m, b in zip(measured, bare, strict=True)), 3),
            "rounds": [round(m, 1) for m in measured],
        }
    traced = results["instrumented+sdk"]
    figures["own_work_us"] = round(statistics.median(
        t - h for t, h in zip(traced, results["bare+headers"], strict=True)), 2)
    figures["floor_us"] = round(statistics.median(
        f - h for f, h in zip(results["floor"], results["bare+headers"], strict=True)), 2)
    figures["span_processing_us"] = round(statistics.median(
        f - p for f, p in zip(results["floor"], results["prebuilt"], strict=True)), 2)
    if "stock otel" in results:
        figures["share_of_stock"] = round(statistics.median(
            (t - b) / (s - b) for t, s, b in zip(traced, results["stock otel"], bare, strict=True)
            if s > b), 3)
    return figures


def run(servers: str, clients: Sequence[str], messages: int, rounds: int) -> dict[str, Any]:
    from sagascope.embedded import create_topics

    provider = TracerProvider()
    exporter = DiscardingExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1_000_000))
    figures: dict[str, Any] = {}
    for client in clients:
        topic = f"bench.producer.{client}"
        create_topics(servers, {topic: 1})
        bench = BENCHES[client](servers, topic, messages, provider)
        try:
            figures[client] = measure(bench, rounds)
        finally:
            bench.close()
        figures[client]["library_us"] = library_cost(client, provider)
    provider.shutdown()
    figures["exported_spans"] = exporter.exported
    return figures


def print_figures(figures: dict[str, Any], clients: Sequence[str]) -> None:
    print(f"{'client':<16} {'variant':<18} {'cpu us':>7} {'added':>7} {'ratio':>6}")
    for client in clients:
        f = figures[client]
        for name in ("bare", "bare+headers", "instrumented", "instrumented+sdk", "prebuilt",
                     "floor", "stock otel"):
            if name in f:
                v = f[name]
                print(f"{client:<16} {name:<18} {v['cpu_us']:>7.2f} {v['added_us']:>7.2f} "
                      f"{v['ratio']:>5.2f}x")
    print()
    for client in clients:
        f = figures[client]
        own = f["own_work_us"]
        lib = f["library_us"]
        line = (f"{client:<16} own work: {own:.2f} us in Kafka (instrumented+sdk - bare+headers), "
                f"{lib:.2f} us alone (send over a client that does nothing) [target <= "
                f"{OWN_WORK_TARGET_US:.0f}: {'ok' if max(own, lib) <= OWN_WORK_TARGET_US else 'MISSED'}]")
        if "share_of_stock" in f:
            share = f["share_of_stock"]
            line += (f"; added / stock added: {share:.2f} "
                     f"[target <= 0.5: {'ok' if share <= 0.5 else 'MISSED'}]")
        print(line)
        print(f"{'':<16} floor: {f['floor_us']:.2f} us over bare+headers (headers and spans made "
              "before the clock, each span handed to the processors in the sending thread), of "
              f"which the span processing (floor - prebuilt): {f['span_processing_us']:.2f} us")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = set(clients) - set(BENCHES)
    if unknown:
        parser.error(f"--clients: unknown {sorted(unknown)}; choose from {', '.join(CLIENTS)}")
    with ExitStack() as stack:
        servers = args.bootstrap_servers
        if not servers:
            from sagascope.embedded import EmbeddedBroker

            servers = stack.enter_context(EmbeddedBroker()).bootstrap_servers
        figures = run(servers, clients, args.messages, args.rounds)
    print(f"{args.messages} messages x {args.rounds} rounds, {len(VALUE)}-byte values; CPU time of "
          "the process; medians over rounds, each round against its own bare run; load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print_figures(figures, clients)
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
