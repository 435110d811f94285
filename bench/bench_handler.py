"""What ``saga_handler`` adds per handled record, on each Kafka client's record type, in one run.

    python bench/bench_handler.py [--bootstrap-servers HOST:PORT] [--records 20000] [--rounds 9]
                                  [--json]

One record with the contract headers (10 headers, a 300-byte value) is produced and consumed
back with each client: a kafka-python ``ConsumerRecord``, a ``confluent_kafka.Message`` and an
aiokafka ``ConsumerRecord``. A handler that does nothing is then called N times on it, plain
and decorated (sync for kafka-python and confluent-kafka, ``async`` for aiokafka), by the
calling thread's CPU time, rounds interleaved; the figure is the median over rounds of
(decorated - plain) per record:

- ``no sdk``: no OpenTelemetry SDK; the saga context and trace ids still flow.
- ``sdk``: an SDK ``TracerProvider`` sampling every trace with a ``BatchSpanProcessor`` (the
  exporter discards): CONSUMER spans recorded, linked to the producer's span.

Target: at most 30 µs per record with CONSUMER spans recorded. Starts the embedded broker when
no bootstrap servers are given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench_producer import VALUE, DiscardingExporter, contract_headers
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from sagascope.instrumentation import saga_handler

# Reading a record back by assignment is the instrumentation tests' (tests/instrumentation).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "instrumentation"))
import kafka_clients

KEY = b"order-123456"
TARGET_US = 30.0


def _kafka_python_record(servers: str, topic: str) -> Any:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(bootstrap_servers=servers)
    producer.send(topic, VALUE, key=KEY, headers=contract_headers()).get(timeout=30)
    producer.close(5)
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                return records[0]
    finally:
        consumer.close()
    raise RuntimeError(f"no record read back from {topic}")


def _confluent_record(servers: str, topic: str) -> Any:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": servers, "log_level": 3})
    producer.produce(topic, VALUE, KEY, headers=contract_headers())
    producer.flush(30)
    return kafka_clients.read_confluent(servers, topic, 1)[0]


async def _aiokafka_record(servers: str, topic: str) -> Any:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    await producer.send_and_wait(topic, VALUE, key=KEY, headers=contract_headers())
    await producer.stop()
    return (await kafka_clients.read_aiokafka(servers, topic, 1))[0]


def records(servers: str) -> dict[str, Any]:
    """One consumed record of each client."""
    from sagascope.embedded import create_topics

    topics = {client: f"bench.handler.{client}" for client in ("kafka-python", "confluent", "aio")}
    create_topics(servers, dict.fromkeys(topics.values(), 1))
    return {
        "kafka-python": _kafka_python_record(servers, topics["kafka-python"]),
        "confluent-kafka": _confluent_record(servers, topics["confluent"]),
        "aiokafka": asyncio.run(_aiokafka_record(servers, topics["aio"])),
    }


def _timer(client: str, record: Any, n: int) -> Callable[[Callable[..., Any]], float]:
    """time(fn): thread CPU µs per call of fn(record), n calls (awaited for aiokafka)."""
    loop = asyncio.new_event_loop()

    def time_sync(fn: Callable[..., Any]) -> float:
        start = time.thread_time()
        for _ in range(n):
            fn(record)
        return (time.thread_time() - start) / n * 1e6

    def time_async(fn: Callable[..., Any]) -> float:
        async def calls() -> None:
            for _ in range(n):
                await fn(record)

        start = time.thread_time()
        loop.run_until_complete(calls())
        return (time.thread_time() - start) / n * 1e6

    return time_async if client == "aiokafka" else time_sync


def handler_cost(client: str, record: Any, provider: Any, n: int, rounds: int) -> float:
    """Median over rounds of (decorated - plain) thread CPU µs per record."""
    if client == "aiokafka":
        async def plain(rec: Any) -> None:
            return None
    else:
        def plain(rec: Any) -> None:
            return None

    traced = saga_handler("payment", consumer_group="payment", tracer_provider=provider)(plain)
    measure = _timer(client, record, n)
    measure(traced)  # warm-up
    added = []
    for r in range(rounds):
        pair = (plain, traced) if r % 2 == 0 else (traced, plain)
        costs = {fn: measure(fn) for fn in pair}
        added.append(costs[traced] - costs[plain])
    return round(statistics.median(added), 2)


def run(servers: str, n: int, rounds: int) -> dict[str, Any]:
    consumed = records(servers)
    sdk = TracerProvider()
    exporter = DiscardingExporter()
    sdk.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1_000_000))
    figures: dict[str, Any] = {}
    for client, record in consumed.items():
        figures[client] = {
            "no sdk": handler_cost(client, record, None, n, rounds),
            "sdk": handler_cost(client, record, sdk, n, rounds),
        }
    sdk.shutdown()
    figures["exported_spans"] = exporter.exported
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        servers = args.bootstrap_servers
        if not servers:
            from sagascope.embedded import EmbeddedBroker

            servers = stack.enter_context(EmbeddedBroker()).bootstrap_servers
        figures = run(servers, args.records, args.rounds)
    print(f"{args.records} calls x {args.rounds} rounds; thread CPU us added per record "
          "(decorated - plain handler), medians over rounds")
    print(f"{'client':<16} {'no sdk':>8} {'sdk (CONSUMER spans)':>22}")
    for client in ("kafka-python", "confluent-kafka", "aiokafka"):
        f = figures[client]
        verdict = "ok" if f["sdk"] <= TARGET_US else "MISSED"
        print(f"{client:<16} {f['no sdk']:>8.2f} {f['sdk']:>22.2f}   [target <= {TARGET_US:.0f}: {verdict}]")
    print(f"CONSUMER spans exported: {figures['exported_spans']}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
