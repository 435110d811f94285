"""What reading a query result costs: the store's ``JSONCompact`` decoding (``store.results``)
against the Arrow stream decoded with pyarrow, as the store read results before.

Both run the same SELECT on the same chDB session, with columns of the ``messages`` table's
types (three ``DateTime64(3, 'UTC')``, strings, a ``LowCardinality``, integers, a map, an
array), and both give the same rows (checked). Timed: the query and its decoding together,
wall and process CPU, the median of ``--repeat`` alternating runs, for a flow-sized result
and a large one.

    python bench/bench_results.py --rows 100000 --repeat 7

Measured 2026-12-07 on the shared 2-core machine: see docs/benchmarks.md "Memory (issue 23)".
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sagascope.store.chdb import ChdbStore

_SELECT = """
SELECT 'orders.events' AS topic, toUInt32(number % 4) AS partition, number AS offset,
  toDateTime64(1796644800 + number / 1000, 3, 'UTC') AS event_time,
  toDateTime64(1796644800 + number / 1000 + 0.002, 3, 'UTC') AS kafka_time,
  toDateTime64(1796644800 + number / 1000 + 0.050, 3, 'UTC') AS ingest_time,
  lower(hex(cityHash64(number))) AS trace_id, concat('order-', toString(number % 997)) AS saga_id,
  toLowCardinality('order-fulfillment') AS saga_type, generateUUIDv4() AS message_id,
  toLowCardinality(['command', 'event'][number % 2 + 1]) AS kind,
  toLowCardinality('PaymentReceived') AS type, map('x-tenant', 'acme') AS headers,
  ['payment', 'inventory'] AS services, repeat('p', 200) AS payload
FROM numbers({rows:UInt64})
"""

_ARROW_SETTINGS = (
    "\nSETTINGS output_format_arrow_string_as_string = 1, "
    "output_format_arrow_low_cardinality_as_dictionary = 0"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UTC_ZONE = ZoneInfo("UTC")


def arrow_rows(store: ChdbStore, rows: int) -> list[tuple[Any, ...]]:
    """The rows as the store read them before: ``ArrowStream``, decoded with pyarrow."""
    import pyarrow as pa

    data = store.execute(
        _SELECT.replace("{rows:UInt64}", str(rows)) + _ARROW_SETTINGS, "ArrowStream"
    )
    table = pa.ipc.open_stream(data).read_all()
    columns: list[list[Any]] = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type):  # as the store did: milliseconds to datetimes
            columns.append([
                (_EPOCH + timedelta(milliseconds=v)).astimezone(_UTC_ZONE)
                for v in column.cast(pa.int64()).to_pylist()
            ])
        elif pa.types.is_map(column.type):
            columns.append([dict(v) for v in column.to_pylist()])
        else:
            columns.append(column.to_pylist())
    return list(zip(*columns, strict=True))


def json_rows(store: ChdbStore, rows: int) -> list[tuple[Any, ...]]:
    """The rows as the store reads them now (``Store.query``)."""
    return store.query(_SELECT, {"rows": rows}).rows


def timed(read: Callable[[ChdbStore, int], Any], store: ChdbStore, rows: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    read(store, rows)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the large result")
    parser.add_argument("--small-rows", type=int, default=30, help="rows of the flow-sized one")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-results-") as path:
        store = ChdbStore(path, "bench")
        check = 1_000
        old, new = arrow_rows(store, check), json_rows(store, check)
        # generateUUIDv4 differs between runs; every other column must agree.
        assert [r[:9] + r[10:] for r in old] == [r[:9] + r[10:] for r in new]
        print(f"same rows ({check}, message_id aside); median of {args.repeat}:")
        for rows in (args.small_rows, args.rows):
            samples: dict[str, list[tuple[float, float]]] = {"arrow": [], "json": []}
            for _ in range(args.repeat):
                samples["arrow"].append(timed(arrow_rows, store, rows))
                samples["json"].append(timed(json_rows, store, rows))
            wall = {k: statistics.median(w for w, _ in v) for k, v in samples.items()}
            cpu = {k: statistics.median(c for _, c in v) for k, v in samples.items()}
            print(
                f"{rows:>8} rows: Arrow+pyarrow {wall['arrow'] * 1e3:8.1f} ms wall "
                f"{cpu['arrow'] * 1e3:8.1f} ms CPU | JSONCompact {wall['json'] * 1e3:8.1f} ms "
                f"wall {cpu['json'] * 1e3:8.1f} ms CPU | JSON/Arrow wall "
                f"{wall['json'] / wall['arrow']:.2f}x CPU {cpu['json'] / cpu['arrow']:.2f}x"
            )


if __name__ == "__main__":
    main()
