"""Timestamp columns read as Python datetimes in their column's zone, without pyarrow or pandas."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def test_timestamps_read_as_datetimes_in_their_zone(store):
    row = store.query(
        "SELECT toDateTime64('2024-01-02 03:04:05.678', 3, 'Europe/Paris'),"
        " toDateTime64('1960-01-02 03:04:05.678912', 6, 'UTC'),"
        " toDateTime64('2024-01-02 03:04:05.678912', 6, 'UTC'),"
        " NULL::Nullable(DateTime64(3, 'UTC'))"
    ).rows[0]
    assert row == (
        datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(1960, 1, 2, 3, 4, 5, 678912, tzinfo=UTC),
        datetime(2024, 1, 2, 3, 4, 5, 678912, tzinfo=UTC),
        None,
    )
    assert row[0].tzinfo == ZoneInfo("Europe/Paris")


_CHILD = """
import sys
from sagascope.store import open_store
rows = open_store(path=sys.argv[1]).query("SELECT now64(3), toDateTime64(now(), 6)").rows
print(len(rows), 'pandas' in sys.modules, 'pyarrow' in sys.modules)
import pyarrow
print(pyarrow.array([1]).to_pylist())
"""


def test_reading_leaves_pyarrow_and_pandas_unimported(tmp_path):
    """In a process of its own: a store's owner runs for days, and pyarrow costs it ~45 MB
    resident, pandas ~50 MB; a table drawn later imports pyarrow as usual."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "store")],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert out.split() == ["1", "False", "False", "[1]"]
