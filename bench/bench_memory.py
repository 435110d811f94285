"""Peak resident memory of a stand-alone ``sagascope collect`` at full speed, and of ``sagascope demo``.

    python bench/bench_memory.py [--records 150000] [--partitions 4]
                                 [--clients kafka-python,confluent-kafka] [--demo-s 60]

For each client: the embedded broker (started here) is filled with ``--records`` records (the
300-byte JSON values with the 10 contract headers of ``bench_collector.py``), then
``sagascope collect`` runs as its own process on a fresh chDB directory and reads them all at
full speed. Its resident memory and that of its children (the decoding processes) is sampled
every 0.1 s from ``/proc`` until its ``sagascope_collector_stored_total`` metric reaches the
record count; the time from launch (group join included) to the last record stored is
reported beside the peaks (``bench_collector.py`` measures the rate). Then ``sagascope demo``
(broker, store, demo traffic, collector, alerter, dashboard server; no browser open) runs for
``--demo-s`` seconds and its peak, with and without its children (decoders, Tansu), is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_collector import produce
from procstat import descendants, rss_mb

from sagascope.embedded import EmbeddedBroker, create_topics

SAGASCOPE = str(Path(sys.executable).with_name("sagascope"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Peaks:
    """Peak resident memory of a process alone and with its descendants."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.own = 0.0
        self.children = 0.0
        self.total = 0.0

    def sample(self) -> None:
        own = rss_mb(self.pid)
        children = sum(rss_mb(p) for p in descendants(self.pid))
        self.own = max(self.own, own)
        self.children = max(self.children, children)
        self.total = max(self.total, own + children)


def stored(metrics_port: int) -> int:
    """The collector's stored-records counter (0 while it is not serving yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0
    return int(sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
        if line.startswith("sagascope_collector_stored_total")
    ))


def collect_run(bootstrap: str, topic: str, records: int, client: str) -> dict[str, float]:
    """Run ``sagascope collect`` until it stored every record; its peaks and rate."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        command = [
            SAGASCOPE, "collect", "--bootstrap-servers", bootstrap, "--store-path", data,
            "--include", f"^{topic}$", "--metrics-port", str(port), "--client", client,
            "--group-id", f"mem-{client}-{time.time_ns()}",
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=data
        )
        peaks = Peaks(process.pid)
        started = time.monotonic()
        last = 0.0
        deadline = time.monotonic() + 900
        try:
            while time.monotonic() < deadline:
                peaks.sample()
                if stored(port) >= records:
                    last = time.monotonic()
                    break
                if process.poll() is not None:
                    raise RuntimeError(f"collect exited: {process.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)
            else:
                raise RuntimeError("collect did not store every record in 900 s")
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return {
        "rss_mb": round(peaks.own), "decoders_rss_mb": round(peaks.children),
        "total_rss_mb": round(peaks.total), "seconds": round(last - started, 1),
    }


def demo_run(seconds: float) -> dict[str, float]:
    """Run ``sagascope demo`` for ``seconds``; its peaks."""
    with tempfile.TemporaryDirectory() as data:
        command = [
            SAGASCOPE, "demo", "--port", "0", "--duration", str(seconds), "--store-path", data,
            "--metrics-port", "0",
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=data
        )
        peaks = Peaks(process.pid)
        while process.poll() is None:
            peaks.sample()
            time.sleep(0.2)
    return {"rss_mb": round(peaks.own), "total_rss_mb": round(peaks.total)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=150_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--clients", default="kafka-python,confluent-kafka")
    parser.add_argument("--demo-s", type=float, default=60.0, help="0 skips the demo")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = "bench.memory"
        create_topics(bootstrap, {topic: args.partitions})
        produce(bootstrap, topic, args.records)
        for client in args.clients.split(","):
            results[f"collect/{client}"] = found = collect_run(bootstrap, topic, args.records, client)
            print(
                f"sagascope collect ({client}), {args.records:,} records at full speed: "
                f"all stored {found['seconds']} s after launch; peak RSS {found['rss_mb']} MB, decoding "
                f"processes {found['decoders_rss_mb']} MB, together {found['total_rss_mb']} MB",
                flush=True,
            )
    if args.demo_s > 0:
        results["demo"] = found = demo_run(args.demo_s)
        print(
            f"sagascope demo for {args.demo_s:.0f} s: peak RSS {found['rss_mb']} MB, "
            f"{found['total_rss_mb']} MB with its children (decoders, broker)"
        )
    print(f"load average: {os.getloadavg()}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
