"""Resident memory of a long-running sagascope command (its process tree), and of a stand-alone
``sagascope collect`` at full speed.

    python bench/bench_memory.py long [--command "serve ..."] [--traffic-rate 20]
                                      [--seconds 1800] [--warmup-s 300] [--out samples.json]
    python bench/bench_memory.py collect [--records 150000] [--partitions 4]
                                         [--clients kafka-python,confluent-kafka]
    python bench/bench_memory.py alerter [--open-alerts 5000] [--repeat 3]

``long``: runs ``sagascope <command>`` (default: ``serve`` with the packaged demo
configuration as its ``sagascope.toml``, ``{demo_config}``) on a fresh store directory
(``{store}``) for ``--seconds``. With ``--traffic-rate`` (default 20 sagas/s) an embedded
broker (``{bootstrap}``) carries the demo's services and traffic, run by a process of their
own that is not measured and holds no store (so it shares no chDB pages with the measured
process), as a user's own system on their own Kafka would. ``--traffic-rate 0 --command
"demo --rate 20 --port 0 --metrics-port 0 --store-path {store}"`` measures the demo instead.

Every second it samples, from ``/proc``, the command's process and each descendant (the
decoding processes, other children): resident memory (RSS; anonymous and file-backed pages
apart: chDB's engine is a shared library whose mapped code counts as resident) and
proportional memory (PSS, ``smaps_rollup``: a page shared by n processes counts 1/n in
each, so the PSS summed over the tree counts the tree's shared pages once). It prints a
line a minute, then the peak of the tree (sum of RSS, and sum of PSS) and the growth after
the warm-up: the mean of the last minute against the mean of the minute after
``--warmup-s`` (targets: at most 10 % growth, peak at most 512 MB).

``collect``: for each client the embedded broker (started here) is filled with ``--records``
records (the 300-byte JSON values with the 10 contract headers of ``bench_collector.py``),
then ``sagascope collect`` runs as its own process on a fresh chDB directory and reads them
all at full speed; its tree's memory is sampled every 0.1 s until its
``sagascope_collector_stored_total`` metric reaches the record count.

``alerter``: one alerter evaluation in this process, on a fresh chDB directory holding
``--open-alerts`` stalled sagas whose alerts are open already (so nothing changes, as in most
evaluations of a long run): the most Python memory it held at once (``tracemalloc``) and its
time, the best of ``--repeat``. Its share of ``serve``'s memory grows with the open alerts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_collector import produce
from procstat import command_line, descendants, pss_split_mb, rss_mb, rss_split_mb

from sagascope.embedded import EmbeddedBroker, create_topics

SAGASCOPE = str(Path(sys.executable).with_name("sagascope"))
DEFAULT_LONG_COMMAND = (
    "serve --config {demo_config} --bootstrap-servers {bootstrap} --store-path {store} "
    "--port 0 --metrics-port 0"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kind_of(pid: int) -> str:
    """Which part a descendant process is, from its command line."""
    line = command_line(pid)
    if "tansu" in line:
        return "broker"
    if "decode" in line:
        return "decoders"
    return "other"


@dataclass
class Sample:
    """One look at the tree, in MB: the sagascope process's resident (RSS) and proportional
    (PSS) memory, anonymous and file-backed apart, and each kind of descendant's."""

    at_s: float
    own_anon: float
    own_file: float
    own_pss_anon: float = 0.0
    own_pss_file: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    parts_pss: dict[str, float] = field(default_factory=dict)
    #: the sagascope process's threads (chDB's idle pool threads keep their stacks)
    threads: int = 0
    #: the machine's one-minute load average
    load: float = 0.0

    @property
    def own(self) -> float:
        return self.own_anon + self.own_file

    @property
    def own_pss(self) -> float:
        return self.own_pss_anon + self.own_pss_file

    @property
    def total(self) -> float:
        """The sum of RSS over the tree: a page mapped by n of its processes counts n times."""
        return self.own + sum(self.parts.values())

    @property
    def total_pss(self) -> float:
        """The sum of PSS over the tree: a page its processes share counts once."""
        return self.own_pss + sum(self.parts_pss.values())

    @property
    def without_broker(self) -> float:
        return self.total - self.parts.get("broker", 0.0)


def sample(pid: int, at_s: float) -> Sample:
    anon, file = rss_split_mb(pid)
    pss_anon, pss_file = pss_split_mb(pid)
    parts: dict[str, float] = {}
    parts_pss: dict[str, float] = {}
    for child in descendants(pid):
        kind = kind_of(child)
        parts[kind] = parts.get(kind, 0.0) + rss_mb(child)
        parts_pss[kind] = parts_pss.get(kind, 0.0) + sum(pss_split_mb(child))
    return Sample(at_s, anon, file, pss_anon, pss_file, parts, parts_pss, thread_count(pid),
                  os.getloadavg()[0])


def thread_count(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines()
                 if line.startswith("Threads:")), 0)


class Peaks:
    """Peak resident memory of a process alone, of its descendants, and of both."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.own = 0.0
        self.own_anon = 0.0
        self.children = 0.0
        self.total = 0.0
        self.total_pss = 0.0

    def sample(self) -> None:
        s = sample(self.pid, 0.0)
        self.own = max(self.own, s.own)
        self.own_anon = max(self.own_anon, s.own_anon)
        self.children = max(self.children, sum(s.parts.values()))
        self.total = max(self.total, s.total)
        self.total_pss = max(self.total_pss, s.total_pss)


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


@contextmanager
def running(
    argv: list[str], cwd: str | None = None, stderr: int = subprocess.DEVNULL
) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` run in ``cwd``, in a session of its own, stopped on leaving as Ctrl-C stops it
    (SIGINT; SIGKILL if it is still running 60 s later)."""
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=stderr, cwd=cwd, start_new_session=True,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def running_sagascope(
    args: list[str], cwd: str, stderr: int = subprocess.DEVNULL
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """``sagascope *args`` in ``cwd``, as :func:`running` runs it."""
    return running([SAGASCOPE, *args], cwd, stderr)


def collect_run(bootstrap: str, topic: str, records: int, client: str) -> dict[str, float]:
    """Run ``sagascope collect`` until it stored every record; its peaks and time."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        args = [
            "collect", "--bootstrap-servers", bootstrap, "--store-path", data,
            "--include", f"^{topic}$", "--metrics-port", str(port), "--client", client,
            "--group-id", f"mem-{client}-{time.time_ns()}",
        ]
        with running_sagascope(args, data, stderr=subprocess.PIPE) as process:
            peaks = Peaks(process.pid)
            started = time.monotonic()
            last = 0.0
            deadline = time.monotonic() + 900
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
    return {
        "rss_mb": round(peaks.own), "anon_rss_mb": round(peaks.own_anon),
        "decoders_rss_mb": round(peaks.children), "total_rss_mb": round(peaks.total),
        "total_pss_mb": round(peaks.total_pss),
        "seconds": round(last - started, 1),
    }


def _mean(samples: list[Sample], attr: str) -> float:
    return statistics.fmean(getattr(s, attr) for s in samples) if samples else 0.0


def long_run(
    command: str, seconds: float, warmup_s: float, out: str, bootstrap: str = ""
) -> dict[str, float]:
    """Run ``sagascope <command>`` for ``seconds``, sampling its tree every second."""
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory() as data:
        command = (command.replace("{store}", data).replace("{bootstrap}", bootstrap)
                   .replace("{demo_config}", demo_config()))
        with running_sagascope(shlex.split(command), data) as process:
            started = time.monotonic()
            next_line = 60.0
            while (at := time.monotonic() - started) < seconds:
                if process.poll() is not None:
                    raise RuntimeError(f"sagascope {command} exited with {process.returncode}")
                samples.append(sample(process.pid, at))
                if at >= next_line:
                    s = samples[-1]
                    print(
                        f"  {at / 60:4.0f} min: RSS tree {s.total:.0f} MB (sagascope "
                        f"{s.own:.0f}: anon {s.own_anon:.0f}, file {s.own_file:.0f}; "
                        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(s.parts.items()))
                        + f"); without broker {s.without_broker:.0f} MB; PSS tree "
                        f"{s.total_pss:.0f} MB (sagascope anon {s.own_pss_anon:.0f}, file "
                        f"{s.own_pss_file:.0f}); {s.threads} threads; load {s.load:.1f}",
                        flush=True,
                    )
                    next_line += 60.0
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started - at)))
    if out:
        Path(out).write_text(json.dumps([
            {"at_s": round(s.at_s, 1), "own_anon": round(s.own_anon, 1),
             "own_file": round(s.own_file, 1), "own_pss_anon": round(s.own_pss_anon, 1),
             "own_pss_file": round(s.own_pss_file, 1), "threads": s.threads,
             "load": round(s.load, 2),
             **{k: round(v, 1) for k, v in s.parts.items()},
             **{f"{k}_pss": round(v, 1) for k, v in s.parts_pss.items()}}
            for s in samples
        ]))
    after_warmup = [s for s in samples if warmup_s <= s.at_s < warmup_s + 60]
    last_minute = [s for s in samples if s.at_s >= samples[-1].at_s - 60]
    result: dict[str, float] = {
        "seconds": round(samples[-1].at_s),
        "peak_tree_mb": round(max(s.total for s in samples)),
        "peak_without_broker_mb": round(max(s.without_broker for s in samples)),
        "peak_sagascope_mb": round(max(s.own for s in samples)),
        "peak_sagascope_anon_mb": round(max(s.own_anon for s in samples)),
        "peak_tree_pss_mb": round(max(s.total_pss for s in samples)),
    }
    for attr in ("total", "without_broker", "own_anon", "total_pss"):
        first, last = _mean(after_warmup, attr), _mean(last_minute, attr)
        result[f"{attr}_after_warmup_mb"] = round(first)
        result[f"{attr}_last_minute_mb"] = round(last)
        result[f"{attr}_growth_pct"] = round(100 * (last - first) / first, 1) if first else 0.0
    for kind in sorted({k for s in samples for k in s.parts}):
        result[f"peak_{kind}_mb"] = round(max(s.parts.get(kind, 0.0) for s in samples))
    return result


def demo_config() -> str:
    """The packaged demo configuration (its correlation rules, alert thresholds), which a
    measured ``serve`` reads as a user's own ``sagascope.toml`` (``{demo_config}``)."""
    return str(resources.files("sagascope.demo_services").joinpath("demo.toml"))


def run_traffic(bootstrap: str, rate: float) -> None:
    """The demo's services and traffic alone (no collector, no store: nothing of sagascope's
    reading side shares pages with the measured process), on the demo's own topic names,
    until SIGINT."""
    from sagascope.demo_services import DemoRunner
    from sagascope.settings import load_settings

    settings = load_settings(demo_config(), {})
    runner = DemoRunner(
        dataclasses.replace(settings.demo, rate=rate), bootstrap,
        telemetry_topic=settings.collector.telemetry_topic,
    )
    runner.start()
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        runner.stop()


@contextmanager
def demo_traffic(bootstrap: str, rate: float) -> Iterator[None]:
    """The demo's traffic at ``rate`` sagas/s on ``bootstrap``, from a process of its own."""
    with running([sys.executable, __file__, "traffic", "--bootstrap", bootstrap,
                  "--rate", str(rate)]):
        yield


def alerter_run(open_alerts: int, repeat: int) -> dict[str, float]:
    """One alerter evaluation with ``open_alerts`` sagas stalled, each with its alert open
    (nothing changes): the most Python memory it held at once (tracemalloc) and its time."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "alerter"))
    from alert_sinks import RecordingSink
    from seeding import order_saga, seed

    from sagascope.alerter import Alerter
    from sagascope.queries import SagaQueries
    from sagascope.settings import AlertSettings
    from sagascope.store import ChdbStore, ensure_schema

    with tempfile.TemporaryDirectory() as data:
        store = ChdbStore(data, "bench")
        ensure_schema(store)
        now = datetime.now(UTC).replace(microsecond=0)
        for first in range(0, open_alerts, 1000):
            seed(store, [order_saga(f"order-{i}", "stalled", start=now - timedelta(hours=1))
                         for i in range(first, min(open_alerts, first + 1000))])
        store.insert("progress", [{
            "group_id": "g", "collector_id": "c", "topic": "orders", "partition": 0,
            "stored_offset": 0, "end_offset": 0, "read_until": now, "updated_at": now,
        }])
        alerter = Alerter(store, SagaQueries(store), AlertSettings(default_threshold_s=60.0),
                          [RecordingSink()], "http://dashboard.example/")
        alerter.evaluate_once()  # opens them all
        peaks, times = [], []
        for _ in range(repeat):
            tracemalloc.start()
            started = time.perf_counter()
            evaluation = alerter.evaluate_once()
            times.append(time.perf_counter() - started)
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
        assert evaluation.open == open_alerts and not evaluation.opened, evaluation
    return {"peak_python_mb": round(min(peaks), 1), "seconds": round(min(times), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    long = modes.add_parser("long", help="a long run of one command (default: serve at 20 sagas/s)")
    long.add_argument("--command", default=DEFAULT_LONG_COMMAND,
                      help="sagascope arguments; {store} becomes a fresh store directory, "
                      "{bootstrap} the broker's address, {demo_config} the demo's configuration")
    long.add_argument("--seconds", type=float, default=1800.0)
    long.add_argument("--warmup-s", type=float, default=300.0)
    long.add_argument("--out", default="", help="write every sample to this JSON file")
    long.add_argument(
        "--traffic-rate", type=float, default=20.0,
        help="start an embedded broker ({bootstrap} in the command) and, in a process of its "
        "own and not measured, the demo's traffic at this many sagas/s on it (0: neither)",
    )
    traffic = modes.add_parser("traffic", help="(internal) the demo's traffic for `long`")
    traffic.add_argument("--bootstrap", required=True)
    traffic.add_argument("--rate", type=float, required=True)
    collect = modes.add_parser("collect", help="a full-speed collect per client")
    collect.add_argument("--records", type=int, default=150_000)
    collect.add_argument("--partitions", type=int, default=4)
    collect.add_argument("--clients", default="kafka-python,confluent-kafka")
    alerter = modes.add_parser("alerter", help="one alerter evaluation with many open alerts")
    alerter.add_argument("--open-alerts", type=int, default=5000)
    alerter.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    if args.mode == "alerter":
        results["alerter"] = r = alerter_run(args.open_alerts, args.repeat)
        print(f"alerter evaluation, {args.open_alerts:,} stalled sagas with their alerts open: "
              f"Python memory at most {r['peak_python_mb']} MB, {r['seconds']} s (best of "
              f"{args.repeat})")
        print(json.dumps(results))
        return 0
    if args.mode == "traffic":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        run_traffic(args.bootstrap, args.rate)
        return 0
    if args.mode == "long":
        print(f"sagascope {args.command} for {args.seconds:.0f} s:", flush=True)
        with ExitStack() as stack:
            bootstrap = ""
            if args.traffic_rate > 0:
                bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap_servers
                stack.enter_context(demo_traffic(bootstrap, args.traffic_rate))
            results["long"] = r = long_run(
                args.command, args.seconds, args.warmup_s, args.out, bootstrap
            )
        print(
            f"peak {r['peak_tree_mb']} MB with every child, {r['peak_without_broker_mb']} MB "
            f"without the broker (sagascope process {r['peak_sagascope_mb']} MB, of it "
            f"anonymous {r['peak_sagascope_anon_mb']} MB); after {args.warmup_s:.0f} s: tree "
            f"{r['total_after_warmup_mb']} -> {r['total_last_minute_mb']} MB "
            f"({r['total_growth_pct']:+.1f} %), without broker {r['without_broker_after_warmup_mb']}"
            f" -> {r['without_broker_last_minute_mb']} MB ({r['without_broker_growth_pct']:+.1f} %)."
            f" Sum of PSS over the tree: peak {r['peak_tree_pss_mb']} MB; after "
            f"{args.warmup_s:.0f} s {r['total_pss_after_warmup_mb']} -> "
            f"{r['total_pss_last_minute_mb']} MB ({r['total_pss_growth_pct']:+.1f} %)"
        )
    else:
        with EmbeddedBroker() as broker:
            bootstrap = broker.bootstrap_servers
            topic = "bench.memory"
            create_topics(bootstrap, {topic: args.partitions})
            produce(bootstrap, topic, args.records)
            for client in args.clients.split(","):
                results[f"collect/{client}"] = found = collect_run(
                    bootstrap, topic, args.records, client
                )
                print(
                    f"sagascope collect ({client}), {args.records:,} records at full speed: all "
                    f"stored {found['seconds']} s after launch; peak RSS {found['rss_mb']} MB (of "
                    f"it anonymous {found['anon_rss_mb']} MB), decoding processes "
                    f"{found['decoders_rss_mb']} MB, together {found['total_rss_mb']} MB (sum of RSS; "
                    f"sum of PSS {found['total_pss_mb']} MB)",
                    flush=True,
                )
    print(f"load average: {os.getloadavg()}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
