"""Opening the embedded store configures the process's allocators (chDB's jemalloc before
chDB loads, glibc's arenas), leaving a user's own configuration alone.

Each case runs in a process of its own: the allocators read their configuration once."""

from __future__ import annotations

import os
import subprocess
import sys

# A configuration jemalloc refuses by aborting the process: that the child dies shows the
# store's configuration reached chDB's allocator.
_REFUSED_CONF = "abort_conf:true,no_such_option:1"

_OPEN_WITH_REFUSED_CONF = """
import sys
from sagascope.store import allocator
allocator.CHDB_JEMALLOC_CONF = sys.argv[2]
from sagascope.store.chdb import ChdbStore
ChdbStore(sys.argv[1]).query("SELECT 1")
print("opened")
"""

# Threads that each allocate through malloc (100 kB: above pymalloc's, below mmap's threshold):
# glibc gives each new thread an arena of its own while there are fewer than its maximum.
_COUNT_GLIBC_ARENAS = """
import ctypes, sys, tempfile, threading
from sagascope.store.chdb import ChdbStore
ChdbStore(sys.argv[1]).query("SELECT 1")
start = threading.Barrier(8)
def allocate():
    start.wait()
    held = [bytearray(100_000) for _ in range(20)]
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile() as out:
    stream = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    print(open(out.name).read().count("<heap nr="))
"""

def _child(code: str, tmp_path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "store"), _REFUSED_CONF],
        capture_output=True, text=True, timeout=120, env=env,
    )


def _env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


def test_opening_the_store_hands_chdb_its_allocator_configuration(tmp_path):
    child = _child(_OPEN_WITH_REFUSED_CONF, tmp_path, _env_without("JE_MALLOC_CONF"))
    assert child.returncode != 0
    assert "opened" not in child.stdout


def test_a_users_own_chdb_allocator_configuration_is_kept(tmp_path):
    child = _child(_OPEN_WITH_REFUSED_CONF, tmp_path, {**os.environ, "JE_MALLOC_CONF": "narenas:1"})
    assert child.returncode == 0, child.stderr
    assert "opened" in child.stdout


def test_opening_the_store_bounds_glibcs_arenas(tmp_path):
    child = _child(_COUNT_GLIBC_ARENAS, tmp_path, _env_without("MALLOC_ARENA_MAX"))
    assert child.returncode == 0, child.stderr
    assert int(child.stdout.strip().splitlines()[-1]) <= 2
