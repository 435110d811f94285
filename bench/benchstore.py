"""The benchmarks' fresh chDB store: an empty database with the schema, in a directory of the
caller's (kept) or a temporary one (removed afterwards)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from sagascope.store import ChdbStore, ensure_schema


@contextmanager
def fresh_store(path: str | None, temp_prefix: str, database: str = "bench") -> Iterator[ChdbStore]:
    """``database`` dropped and created anew with the schema, in ``path``, or in a temporary
    directory named ``temp_prefix...`` when ``path`` is None (removed on leaving)."""
    directory = path or tempfile.mkdtemp(prefix=temp_prefix)
    try:
        ChdbStore(directory, database).command(f"DROP DATABASE IF EXISTS {database}")
        store = ChdbStore(directory, database)
        ensure_schema(store)
        yield store
    finally:
        if not path:
            shutil.rmtree(directory, ignore_errors=True)
