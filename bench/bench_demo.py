"""How a newcomer experiences ``sagascope demo``: time to the first saga on screen, and memory.

Starts ``sagascope demo`` as a user would (packaged config, embedded broker and store), opens
the dashboard in headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright) at
the flow explorer's deep link of the first saga of each flow, reloading until its flow shows,
samples the resident memory of the demo process and its broker while it runs, then stops it
with SIGINT and times the shutdown.

    python bench/bench_demo.py [--run-s 60] [--rate 4] [--chromium /usr/bin/chromium]
    # a fresh clone, as the README's first command installed it:
    python bench/bench_demo.py --sagascope /tmp/clone/.venv/bin/sagascope --cwd /tmp/clone

There is no baseline to divide by: these are wall-clock figures of one machine, printed with
the load they were measured under (``os.getloadavg``).

Measured here (2 cores shared with other test runs; 4 sagas/s; 2026-11-22):

    load 4.8, fresh clone installed by the README's first command (--sagascope, --cwd):
      URL 2.8 s; first order on screen 11.2 s; all four flows on screen by 27.1 s;
      RSS demo process 527 MB peak (515 MB at 60 s), broker 28 MB; SIGINT shutdown 2.8 s
    load 9.8, dev venv, --run-s 45:
      URL 2.9 s; first saga stored 11.5 s; all four flows on screen by 33.9 s;
      RSS 486 MB peak, broker 25 MB; SIGINT shutdown 1.1 s
    without the dashboard (sagascope demo --no-dashboard --duration 30): peak RSS 418 MB
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from procstat import descendants, rss_mb

FLOWS = {"ord": "order", "ful": "order-fulfillment", "shp": "shipment", "trp": "trip-booking"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-s", type=float, default=60.0, help="how long to let it run")
    parser.add_argument("--rate", type=float, default=4.0, help="sagas per second")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--sagascope", help="the sagascope executable (default: this Python's)")
    parser.add_argument("--cwd", help="working directory of the demo (default: an empty one)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    command = [args.sagascope] if args.sagascope else [sys.executable, "-m", "sagascope"]
    env = {**os.environ, "SAGASCOPE_STORE_PATH": str(workdir / "store"),
           "SAGASCOPE_DEMO_RUN_ID": "bench"}
    env.pop("SAGASCOPE_CONFIG", None)
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [*command, "demo", "--port", "0", "--rate", str(args.rate)],
        cwd=args.cwd or workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    samples: list[tuple[float, float]] = []
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(0.5):
            broker = sum(rss_mb(c) for c in descendants(proc.pid))
            samples.append((rss_mb(proc.pid), broker))

    threading.Thread(target=sample, daemon=True).start()
    assert proc.stdout is not None
    url = None
    for line in proc.stdout:
        if m := re.search(r"dashboard at (\S+)", line):
            url = m.group(1)
            break
    if url is None:
        print(proc.stderr.read() if proc.stderr else "", file=sys.stderr)
        return 1
    t_url = time.monotonic() - t0
    stdout_lines: list[str] = []
    threading.Thread(target=lambda: stdout_lines.extend(proc.stdout or ()), daemon=True).start()
    seen: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        deadline = time.monotonic() + 120
        # One tab per flow on its first saga's deep link; a tab that rendered "no match" is
        # reloaded, one that has not rendered yet is left alone (reruns cost the server CPU).
        pending = {}
        for n, (prefix, saga_type) in enumerate(FLOWS.items(), start=1):
            tab = browser.new_page()
            tab.goto(f"{url}/flow_explorer?saga={prefix}-bench-{n:06d}", wait_until="commit")
            pending[saga_type] = tab
        page = next(iter(pending.values()))
        while pending and time.monotonic() < deadline:
            for saga_type, tab in list(pending.items()):
                if (tab.get_by_text(saga_type, exact=True).count()
                        and tab.get_by_text("Cycle time").count()):
                    seen[saga_type] = time.monotonic() - t0
                    page = tab
                    del pending[saga_type]
                elif tab.get_by_text("No saga, trace or message matches").count():
                    tab.reload(wait_until="commit")
            time.sleep(0.2)
        page.screenshot(path=str(workdir / "first-flow.png"), full_page=True)
        browser.close()
    remaining = args.run_s - (time.monotonic() - t0)
    if remaining > 0:
        time.sleep(remaining)
    stop_sampling.set()
    t_stop = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    shutdown_s = time.monotonic() - t_stop
    demo_peak = max((s[0] for s in samples), default=0.0)
    broker_peak = max((s[1] for s in samples), default=0.0)
    steady = samples[-1] if samples else (0.0, 0.0)
    print(f"load average before: {load_before:.2f}")
    print(f"dashboard URL printed after        {t_url:6.1f} s")
    for line in stdout_lines:
        if "first saga stored" in line:
            print(line.strip())
    for saga_type, at in seen.items():
        print(f"first {saga_type:18} on screen after {at:6.1f} s")
    missing = set(FLOWS.values()) - set(seen)
    if missing:
        print(f"never on screen within the deadline: {sorted(missing)}")
    print(f"memory (RSS) demo process: peak {demo_peak:.0f} MB, at {args.run_s:.0f} s "
          f"{steady[0]:.0f} MB; embedded broker: peak {broker_peak:.0f} MB")
    print(f"shutdown on SIGINT: {shutdown_s:.1f} s, exit code {proc.returncode}")
    print(f"demo summary: {err.strip().splitlines()[-1] if err.strip() else '-'}")
    print(f"screenshot: {workdir / 'first-flow.png'}")
    return 0 if not missing and proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
