"""Fixtures of the discovery tests: fresh stores for a module."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import pytest

from sagascope.store import ChdbStore, Store, ensure_schema

_counter = itertools.count()


@pytest.fixture(scope="module")
def module_store(chdb_path: str) -> Iterator[Callable[[], Store]]:
    """Fresh chDB databases for one test module, dropped afterwards."""
    made: list[Store] = []

    def make() -> Store:
        store = ChdbStore(chdb_path, f"discover_{os.getpid()}_{next(_counter)}")
        ensure_schema(store)
        made.append(store)
        return store

    yield make
    for store in made:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
