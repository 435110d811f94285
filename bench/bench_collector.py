"""Collector ingest rate against bare consume loops, CPU per stage, memory, and latency.

    python bench/bench_collector.py [--records 150000] [--partitions 4] [--rounds 3]
                                    [--clients kafka-python,confluent-kafka]
                                    [--latency-s 10] [--latency-rate 300]

One process, the embedded broker (started here), a fresh chDB store in a temporary directory.
The same records (300-byte JSON values with the 10 contract headers) are read, per round, by:

- ``bare-kp``: a kafka-python ``KafkaConsumer`` (manually assigned, from the beginning) that
  only counts records;
- ``bare-cf``: a confluent-kafka ``Consumer`` doing the same (``consume`` in batches);
- ``ceiling-cf``: the bare confluent-kafka loop that also stores one row per record into chDB
  (rows decoded and encoded before the clock starts, inserted by a second thread in inserts
  of ``batch_rows`` rows, as the collector inserts): consuming and storing with no decoding
  at all, the most any collector on this store can reach;
- ``collector/<client>``: ``Collector`` with ``collector.client`` = each of ``--clients``, in a
  new consumer group, through decode, redaction rules, correlation, hash chain, insert into
  chDB and offset commit.

Each is timed from its first record to its last (group join excluded); the order rotates per
round and the medians are reported with the ratios of the collector to each bare loop. During
each collector run the CPU time of every thread of this process (from ``/proc/self/task``) and
of the decoding processes is read before and after, and reported per stored record by stage:
the collector loop thread, the writer thread (inserts run in chDB on it), chDB's own threads
(merges, the ``saga_state`` view), the Kafka client's I/O threads, and the decoding processes.
Peak resident memory of this process and of the decoding processes is sampled meanwhile.
Then, with the collector caught up, records are published at a steady rate and each one's
publish-to-queryable latency (send call to the moment a ``count()`` poll of the store sees it)
gives p50/p99 at the default ``flush_interval_s``.

Figures and their history: docs/benchmarks.md (and the note of the session that took them).
"""


from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from procstat import rss_kb

from sagascope.collector import Collector
from sagascope.collector.decode.correlate import Correlator
from sagascope.collector.decode.redact import Redactor
from sagascope.collector.decode.rows import DecodeContext, decode_row
from sagascope.collector.record_batches import Record
from sagascope.embedded import EmbeddedBroker, create_topics
from sagascope.instrumentation.contract import format_time, new_message_id
from sagascope.settings import CollectorSettings, RedactionRule
from sagascope.store import ChdbStore, ensure_schema
from sagascope.store.base import encode_rows
from sagascope.store.timetext import clickhouse_ms

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def headers(i: int) -> list[tuple[str, bytes]]:
    return [
        ("traceparent", TRACEPARENT),
        ("ce_specversion", b"1.0"),
        ("ce_id", new_message_id().encode()),
        ("ce_source", b"payment"),
        ("ce_type", b"PaymentReceived"),
        ("ce_time", format_time().encode()),
        ("ce_sagaid", f"order-{i % 5000}".encode()),
        ("ce_sagatype", b"order-fulfillment"),
        ("ce_kind", b"event"),
        ("ce_causationid", new_message_id().encode()),
    ]


def value(i: int) -> bytes:
    body = {"order_id": f"order-{i % 5000}", "amount": 12.5, "items": ["x" * 30] * 5, "i": i}
    raw = json.dumps(body)
    return (raw[:-1] + ', "pad": "' + "p" * max(0, 296 - len(raw) - 10) + '"}').encode()


def produce(bootstrap: str, topic: str, n: int, batch_bytes: int = 256 * 1024) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=batch_bytes)
    for i in range(n):
        producer.send(topic, value(i), key=f"order-{i % 5000}".encode(), headers=headers(i))
    producer.flush()
    producer.close()


def _seconds_to_count(read: Callable[[], int], n: int) -> float:
    """Seconds from the first record to the n-th; ``read`` polls once and says how many
    records that brought."""
    seen = 0
    first = 0.0
    while seen < n:
        got = read()
        if got and not first:
            first = time.perf_counter()
        seen += got
    return time.perf_counter() - first


def bare_consume(bootstrap: str, topic: str, partitions: int, n: int) -> float:
    """Seconds from the first record to the n-th, counting only (kafka-python)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    consumer.seek_to_beginning()
    elapsed = _seconds_to_count(
        lambda: sum(map(len, consumer.poll(timeout_ms=500, max_records=5000).values())), n
    )
    consumer.close()
    return elapsed


def bare_confluent(bootstrap: str, topic: str, partitions: int, n: int) -> float:
    """Seconds from the first record to the n-th, counting only (confluent-kafka)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer
    from confluent_kafka import TopicPartition as CfPartition

    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bare-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
    })
    consumer.assign([CfPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    elapsed = _seconds_to_count(
        lambda: sum(m.error() is None for m in consumer.consume(num_messages=5000, timeout=0.5)), n
    )
    consumer.close()
    return elapsed


def encoded_rows(topic: str, partitions: int, n: int, chunk: int) -> list[tuple[bytes, int]]:
    """``messages`` rows of the bench's records, decoded and encoded before any timing, in
    chunks of ``chunk`` rows: what the ceiling run inserts."""
    ctx = DecodeContext(Correlator(()), Redactor((RedactionRule(path="/card/number"),)), 65536)
    now = int(time.time() * 1000)
    now_text = clickhouse_ms(now)
    chunks = []
    for start in range(0, n, chunk):
        rows = []
        for i in range(start, min(n, start + chunk)):
            record = Record(topic, i % partitions, i, now, None, value(i), headers(i))
            row = decode_row(record, ctx, now, now_text, spans=False)
            row["chain_hash"] = ""
            rows.append(row)
        chunks.append((encode_rows(rows), len(rows)))
    return chunks


def ceiling(
    store: Any, bootstrap: str, topic: str, partitions: int, n: int, chunks: list[tuple[bytes, int]]
) -> float:
    """Seconds for a bare confluent-kafka loop that also stores one already-encoded row per
    record (inserted by a second thread, as the collector's writer does): consuming and
    storing with no decoding at all, the most any collector on this store can do."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer
    from confluent_kafka import TopicPartition as CfPartition

    columns = list(orjson.loads(chunks[0][0].split(b"\n", 1)[0]))
    todo: queue.SimpleQueue[tuple[bytes, int] | None] = queue.SimpleQueue()
    stored = [0]

    def write() -> None:
        while (item := todo.get()) is not None:
            store.insert_encoded("messages", columns, item[0])
            stored[0] += item[1]

    writer = threading.Thread(target=write, name="ceiling-writer")
    writer.start()
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"ceiling-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
    })
    consumer.assign([CfPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    seen = handed = 0
    first = 0.0
    pending = iter(chunks)
    try:
        while seen < n:
            messages = consumer.consume(num_messages=5000, timeout=0.5)
            if messages and not first:
                first = time.perf_counter()
            seen += sum(1 for m in messages if m.error() is None)
            while handed < seen:  # one stored row per consumed record
                data, rows = next(pending)
                todo.put((data, rows))
                handed += rows
    finally:
        todo.put(None)
        writer.join()
        consumer.close()
    return time.perf_counter() - first


def collector_settings(topic: str, **overrides: Any) -> CollectorSettings:
    base = dict(
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        include=topic,
        max_poll_interval_ms=3000,
        session_timeout_ms=3000,
        # One rule of each kind, as a deployment would have.
        redaction=(RedactionRule(path="/card/number"),),
    )
    base.update(overrides)
    return CollectorSettings(**base)  # type: ignore[arg-type]


_TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def _cpu_us(stat_path: str) -> float:
    """utime + stime of a /proc stat file, in microseconds (0 when gone)."""
    try:
        fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * _TICK_US


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """tid -> (comm, CPU us) of every thread of this process."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            comm = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        except OSError:
            continue
        out[int(tid)] = (comm, _cpu_us(f"/proc/self/task/{tid}/stat"))
    return out


def _stage_of(tid: int, comm: str, python_threads: dict[int, str], collector: Collector) -> str:
    name = python_threads.get(tid)
    if name is not None:
        if name.startswith("collector-writer"):
            return "writer thread (chDB insert)"
        if name == f"collector-{collector.collector_id}":
            return "collector loop thread"
        if "kafka" in name.lower() or "selector" in name.lower() or "heartbeat" in name.lower():
            return "kafka client I/O"
        if name.startswith(("sagascope-decoder", "sagascope-topics")):
            return "pipes to decoders, topic watcher"
        return "other python threads (bench)"
    if comm.startswith("rdk:"):
        return "kafka client I/O"
    return "chDB threads (merges, views)"


def _decoder_pids(collector: Collector) -> list[int]:
    pool = collector._decoder
    if pool is None:
        return []
    return [w._process.pid for w in pool._workers if w._process is not None]


class StageMeter:
    """CPU per stage and peak memory of one collector run (sampled from another thread)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.peak_rss_kb = 0
        self.peak_decoder_rss_kb = 0
        self._before: dict[int, tuple[str, float]] = {}
        self._decoders_before: dict[int, float] = {}
        self._decoders_last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self._before = _thread_cpu()
        self._decoders_before = {p: _cpu_us(f"/proc/{p}/stat") for p in _decoder_pids(self.collector)}
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_rss_kb = max(self.peak_rss_kb, rss_kb())
            pids = _decoder_pids(self.collector)
            self.peak_decoder_rss_kb = max(self.peak_decoder_rss_kb, sum(rss_kb(p) for p in pids))
            for p in pids:
                self._decoders_last[p] = _cpu_us(f"/proc/{p}/stat")

    def stop(self, records: int) -> dict[str, float]:
        """CPU us per record by stage since start."""
        after = _thread_cpu()
        for p in _decoder_pids(self.collector):
            self._decoders_last[p] = _cpu_us(f"/proc/{p}/stat")
        self._stop.set()
        self._thread.join()
        python_threads = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
        stages: dict[str, float] = {}
        for tid, (comm, cpu) in after.items():
            spent = cpu - self._before.get(tid, (comm, 0.0))[1]
            stage = _stage_of(tid, comm, python_threads, self.collector)
            stages[stage] = stages.get(stage, 0.0) + spent
        decoding = sum(
            last - self._decoders_before.get(p, 0.0) for p, last in self._decoders_last.items()
        )
        if decoding:
            stages["decoding processes"] = decoding
        return {k: v / records for k, v in sorted(stages.items())}


def collector_consume(
    store: Any, bootstrap: str, topic: str, n: int, **overrides: Any
) -> tuple[float, dict[str, float], StageMeter]:
    """Seconds from the collector's first consumed record to the n-th stored one, CPU us
    per record by stage, and the meter (peak memory)."""
    collector = Collector(store, bootstrap, collector_settings(topic, **overrides))
    collector.start()
    meter = StageMeter(collector)
    try:
        first = 0.0
        while True:
            if not first and collector.metrics.value("consumed") > 0:
                first = time.perf_counter()
                meter.start()
            if collector.metrics.value("stored") >= n:
                elapsed = time.perf_counter() - first
                return elapsed, meter.stop(n), meter
            # Reading the metrics walks the whole registry: not too often once running, as it
            # runs in the collector's process (20 ms is under 0.5% of a run); often before the
            # first record, whose time starts the clock.
            time.sleep(0.02 if first else 0.002)
    finally:
        collector.stop()


def latency(store: Any, bootstrap: str, topic: str, seconds: float, rate: float) -> list[float]:
    """Publish-to-queryable latency of records sent at ``rate`` per second for ``seconds``."""
    collector = Collector(store, bootstrap, collector_settings(topic))
    collector.start()
    if not collector.ready.wait(60):
        raise RuntimeError("collector did not join")
    sent: list[float] = []
    seen_at: list[float] = []
    done = threading.Event()

    def poll_store() -> None:
        while not done.is_set():
            count = int(store.query(
                "SELECT count() FROM messages WHERE topic = {t:String}", {"t": topic}
            ).scalar())
            now = time.perf_counter()
            while len(seen_at) < count:
                seen_at.append(now)
            time.sleep(0.01)

    poller = threading.Thread(target=poll_store, daemon=True)
    poller.start()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    total = int(seconds * rate)
    start = time.perf_counter()
    for i in range(total):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent.append(time.perf_counter())
        producer.send(topic, value(i), headers=headers(i))
    producer.flush()
    deadline = time.perf_counter() + 60
    while len(seen_at) < total and time.perf_counter() < deadline:
        time.sleep(0.05)
    done.set()
    poller.join()
    producer.close()
    collector.stop()
    return [seen_at[i] - sent[i] for i in range(min(total, len(seen_at)))]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=150000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default="kafka-python,confluent-kafka", help="collector.client values")
    parser.add_argument("--latency-s", type=float, default=10.0)
    parser.add_argument("--latency-rate", type=float, default=300.0)
    parser.add_argument("--decode-workers", type=int, help="collector.decode_workers")
    parser.add_argument("--batch-rows", type=int, help="collector.batch_rows")
    parser.add_argument(
        "--producer-batch-bytes", type=int, default=256 * 1024,
        help="batch_size of the producer writing the records (kafka-python's default is 16384)",
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.decode_workers is not None:
        overrides["decode_workers"] = args.decode_workers
    if args.batch_rows is not None:
        overrides["batch_rows"] = args.batch_rows
    clients = [c for c in args.clients.split(",") if c]
    runners = ["bare-kp", "bare-cf", "ceiling-cf", *(f"collector/{c}" for c in clients)]
    print(f"load average before: {os.getloadavg()}", flush=True)

    rates: dict[str, list[float]] = {name: [] for name in runners}
    stages: dict[str, list[dict[str, float]]] = {c: [] for c in clients}
    peaks: dict[str, list[tuple[int, int]]] = {c: [] for c in clients}
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as data:
        bootstrap = broker.bootstrap_servers
        # One database per collector: each reads the same topics, and the store says where
        # a collector resumes.
        stores = {c: ChdbStore(os.path.join(data, "store"), f"bench_{c.replace('-', '_')}") for c in clients}
        stores["ceiling"] = ChdbStore(os.path.join(data, "store"), "bench_ceiling")
        for store in stores.values():
            ensure_schema(store)
        for r in range(args.rounds):
            topic = f"bench.ingest.{r}"
            create_topics(bootstrap, {topic: args.partitions})
            produce(bootstrap, topic, args.records, args.producer_batch_bytes)
            chunks = encoded_rows(
                topic, args.partitions, args.records, args.batch_rows or CollectorSettings().batch_rows
            )
            order = runners[r % len(runners):] + runners[: r % len(runners)]
            for name in order:
                if name == "bare-kp":
                    seconds = bare_consume(bootstrap, topic, args.partitions, args.records)
                elif name == "bare-cf":
                    seconds = bare_confluent(bootstrap, topic, args.partitions, args.records)
                elif name == "ceiling-cf":
                    seconds = ceiling(
                        stores["ceiling"], bootstrap, topic, args.partitions, args.records, chunks
                    )
                else:
                    client = name.split("/", 1)[1]
                    seconds, per_stage, meter = collector_consume(
                        stores[client], bootstrap, topic, args.records, client=client, **overrides
                    )
                    stages[client].append(per_stage)
                    peaks[client].append((meter.peak_rss_kb, meter.peak_decoder_rss_kb))
                rates[name].append(args.records / seconds)
                print(f"  {name}: {rates[name][-1]:,.0f} rec/s", flush=True)
            print(
                f"round {r} (load {os.getloadavg()[0]:.1f}): "
                + ", ".join(f"{name} {rates[name][-1]:,.0f}" for name in runners) + " rec/s",
                flush=True,
            )
        lat_topic = "bench.latency"
        create_topics(bootstrap, {lat_topic: 1})
        lat = latency(stores[clients[0]], bootstrap, lat_topic, args.latency_s, args.latency_rate)
    report(args, runners, rates, stages, peaks, lat)
    return 0


def report(
    args: argparse.Namespace,
    runners: list[str],
    rates: dict[str, list[float]],
    stages: dict[str, list[dict[str, float]]],
    peaks: dict[str, list[tuple[int, int]]],
    lat: list[float],
) -> None:
    median = {name: statistics.median(values) for name, values in rates.items()}
    result: dict[str, Any] = {"records": args.records, "rounds": args.rounds, "rates": median}
    print(f"medians over {args.rounds} round(s) of {args.records:,} records:")
    for name in runners:
        print(f"  {name:28s} {median[name]:>9,.0f} rec/s")
    bound = median["ceiling-cf"] / median["bare-cf"]
    result["ceiling-cf / bare-cf"] = bound
    print(f"ceiling (bare confluent-kafka loop + chDB insert of already-encoded rows, nothing "
          f"decoded): {bound:.2f}x bare confluent-kafka")
    for client, per_round in stages.items():
        name = f"collector/{client}"
        kp, cf = median[name] / median["bare-kp"], median[name] / median["bare-cf"]
        result[f"{name} / bare-kp"], result[f"{name} / bare-cf"] = kp, cf
        print(f"{name}: {kp:.2f}x bare kafka-python, {cf:.2f}x bare confluent-kafka "
              "(targets: >= 80,000 rec/s, >= 0.6x bare confluent-kafka)")
        names = sorted({stage for run in per_round for stage in run})
        cpu = {stage: statistics.median(run.get(stage, 0.0) for run in per_round) for stage in names}
        result[f"{name} cpu_us_per_record"] = cpu
        print(f"  CPU us per stored record (median of rounds), total {sum(cpu.values()):.1f}:")
        for stage in names:
            print(f"    {stage:36s} {cpu[stage]:6.1f}")
        rss = max(p[0] for p in peaks[client]) / 1024
        children = max(p[1] for p in peaks[client]) / 1024
        result[f"{name} peak_rss_mb"] = {"process": rss, "decoding_processes": children}
        print(f"  peak RSS: process {rss:.0f} MB (broker excluded; store and bench included), "
              f"decoding processes {children:.0f} MB together")
    flush = CollectorSettings().flush_interval_s
    result.update(latency_p50_s=percentile(lat, 0.50), latency_p99_s=percentile(lat, 0.99),
                  latency_samples=len(lat), flush_interval_s=flush)
    print(
        f"publish-to-queryable (collector.client default, flush_interval_s {flush}): "
        f"p50 {result['latency_p50_s'] * 1000:.0f} ms, p99 {result['latency_p99_s'] * 1000:.0f} ms "
        f"over {len(lat)} records (target p99 <= 1 s)"
    )
    print(f"load average after: {os.getloadavg()}")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
