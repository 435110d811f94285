"""The memory allocators of a process that holds the embedded store, configured as it opens it.

Two allocators share such a process: chDB's engine has a jemalloc of its own, and Python and
the libraries' threads use glibc's malloc (pyarrow, with a third, is not loaded: query results
are decoded without it, ``store.results``). Each is tuned by its makers for a short process
or a server with memory to spare: an arena per CPU (jemalloc) or up to eight per core
(glibc), freed pages kept for a while and returned only when the same arena allocates again.
An embedded store's merges, inserts and queries run on ever-different pool threads, so the
pages freed in arenas no thread is using stay resident. Under ``sagascope serve`` at 20
sagas/s (``bench/bench_memory.py long``, 7 minutes, see docs/benchmarks.md "Memory (issue
23)"), anonymous memory grew 6.5 MB a minute after the warm-up and peaked at 333 MB as
configured by default; 1.8 MB a minute and 257 MB as configured here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

#: The environment variable chDB's jemalloc reads (ClickHouse builds it with the ``je_`` prefix).
JEMALLOC_CONF_VARIABLE = "JE_MALLOC_CONF"

#: chDB's jemalloc for one long-lived store: two arenas rather than one per CPU; dirty pages
#: returned after 1 s and muzzy ones at once, by jemalloc's background thread, so an idle
#: arena returns its pages too. Alone it lowered the peak (anonymous 333 → 253 MB).
CHDB_JEMALLOC_CONF = (
    "percpu_arena:disabled,narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0,background_thread:true"
)

#: glibc malloc's arenas, at most (glibc's ``MALLOC_ARENA_MAX``). It alone (with pyarrow, then
#: loaded, allocating through it too) slowed the growth (6.5 → 4.0 MB a minute).
GLIBC_ARENA_MAX = 2

#: ``mallopt``'s parameter number for ``M_ARENA_MAX`` (glibc's malloc.h).
_M_ARENA_MAX = -8


def configure_allocators() -> None:
    """Configure the allocators; chDB's only before chDB is first imported in this
    process (its allocator reads ``JE_MALLOC_CONF`` once, when the library loads) and unless
    ``JE_MALLOC_CONF`` is set."""
    if "chdb" in sys.modules:
        log.debug("chdb already loaded; its allocator keeps its configuration")
    else:
        os.environ.setdefault(JEMALLOC_CONF_VARIABLE, CHDB_JEMALLOC_CONF)
    _limit_glibc_arenas()


def _limit_glibc_arenas() -> None:
    if "MALLOC_ARENA_MAX" in os.environ:
        return  # the user's, read by glibc at start-up
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    mallopt = getattr(ctypes.CDLL(libc_name), "mallopt", None)
    if mallopt is None or not mallopt(_M_ARENA_MAX, GLIBC_ARENA_MAX):
        log.debug("glibc's arenas left as they are (no mallopt M_ARENA_MAX here)")
