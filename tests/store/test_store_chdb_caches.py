"""The embedded store's caches and memory limit come from the settings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sagascope.exceptions import ConfigError
from sagascope.settings import StoreSettings
from sagascope.store import open_store_from_settings
from sagascope.store.chdb import DEFAULT_CACHE_MB, cache_limits

_SERVER_SETTINGS = (
    "SELECT name, value FROM system.server_settings WHERE name IN {names:Array(String)}"
)


def _server_settings(store, names) -> dict[str, int]:
    rows = store.query(_SERVER_SETTINGS, {"names": list(names)}).rows
    return {name: int(value) for name, value in rows}


def test_the_default_cache_budget_bounds_every_cache(store):
    limits = cache_limits(DEFAULT_CACHE_MB)
    assert _server_settings(store, limits) == limits
    assert sum(limits.values()) <= DEFAULT_CACHE_MB * 1024 * 1024


_CHILD = """
import json, sys
from sagascope.store import open_store_from_settings
from sagascope.settings import StoreSettings
store = open_store_from_settings(StoreSettings(path=sys.argv[1], chdb_cache_mb=8,
                                               chdb_memory_limit_mb=700))
rows = store.query("SELECT name, value FROM system.server_settings WHERE name IN "
                   "('mark_cache_size', 'max_server_memory_usage')").rows
print(json.dumps({name: int(value) for name, value in rows}))
"""


def test_the_settings_size_the_caches_and_the_memory_limit(tmp_path):
    """In a process of its own: chDB takes its server settings when a process opens it."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "store")],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {
        "mark_cache_size": 4 * 1024 * 1024, "max_server_memory_usage": 700 * 1024 * 1024,
    }


@pytest.mark.parametrize(
    ("field", "value"), [("chdb_cache_mb", 0), ("chdb_memory_limit_mb", -1)]
)
def test_bad_memory_settings_are_refused_naming_them(tmp_path, field, value):
    with pytest.raises(ConfigError, match=f"store.{field}"):
        open_store_from_settings(StoreSettings(path=str(tmp_path), **{field: value}))


def test_embedded_tables_merge_and_clean_up_in_little_memory(store):
    """chDB's global thread pool keeps every thread a concurrent part removal starts, and a
    horizontal merge of small wide parts holds buffers for every column at once; a merge's
    blocks are small."""
    rows = store.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String} "
        "AND engine LIKE '%MergeTree'", {"db": store.database},
    ).rows
    assert rows
    for setting in ("concurrent_part_removal_threshold = 1000000000",
                    "vertical_merge_algorithm_min_rows_to_activate = 1",
                    "vertical_merge_algorithm_min_columns_to_activate = 1",
                    "merge_max_block_size = 1024",
                    "merge_max_block_size_bytes = 2097152"):
        assert all(setting in full for _, full in rows), setting
