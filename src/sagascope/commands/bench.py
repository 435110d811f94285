"""``sagascope bench [NAME ...]``: run the benchmarks of a source checkout's ``bench/`` folder."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from sagascope.exceptions import SagascopeError
from sagascope.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names", nargs="*", metavar="NAME",
        help="benchmarks to run (bench/bench_NAME.py); default: all",
    )
    parser.add_argument("--bench-dir", default="bench", help="folder of the benchmarks")
    parser.add_argument(
        "bench_args", nargs=argparse.REMAINDER, help="arguments after -- go to each benchmark"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    folder = Path(args.bench_dir)
    if not folder.is_dir():
        raise SagascopeError(
            f"no benchmark folder {folder}: benchmarks ship with the source checkout"
        )
    available = {p.stem.removeprefix("bench_"): p for p in sorted(folder.glob("bench_*.py"))}
    names = args.names or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SagascopeError(
            f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}"
        )
    extra = [a for a in args.bench_args if a != "--"]
    status = 0
    for name in names:
        print(f"== bench {name}", flush=True)
        status |= subprocess.call([sys.executable, str(available[name]), *extra])
    return status
