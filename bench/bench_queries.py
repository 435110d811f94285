"""Benchmark of the query layer on a large embedded store.

Generates ``--messages`` realistic saga messages (about 9.4 per saga: orders that complete,
fail, compensate or hang; a 30 s skewed inventory clock; full contract headers; JSON payloads)
straight into chDB with SQL (``numbers()``), stored as the collector stores them:

- the services send every contract header (empty ones left out, ``ce_time`` in the
  instrumentation's millisecond format); ``headers`` keeps only those no column reproduces
  (for these messages none: an empty map) and ``headers_elided`` has a bit for each of the
  others (:func:`elide_sql`, ``_headers.elide``'s rules). Each run first checks a sample of
  rows against ``elide`` and ``rebuild`` themselves (:func:`check_rows`);
- ``chain_hash`` is set on one row in ``LINK_ROWS`` (200) and empty on the others: the
  collector sets it on the last row of each link, a partition's rows of one poll, which under
  bulk load is typically 100-500 rows.

Then it measures:

- flow lookup by saga id (``SagaQueries.flow``, and its messages query alone), p50/p99, against
  the same messages query as a full scan (``identity(saga_id)`` defeats the primary key);
- overview queries: status counts, cycle-time percentiles, process map;
- bytes stored per message against the raw JSON of the same Kafka records. The baselines
  ("sent", "Kafka records as JSON") use the headers as received (rebuilt in SQL by
  ``_headers.rebuild_sql``), never the stored remainder.

    python bench/bench_queries.py --messages 10000000

Runs in its own chDB directory (a temporary one unless ``--path``), so never alongside the
tests in one process.

Measured 2026-11-22 on the shared 2-core build machine (other work going on, so latencies
move by +-50% between runs), 10,000,020 messages / 1,063,830 sagas, after merges, two runs:

    headers and chain hash stored      every row (before)   elided / per link (now)
    stored messages, B/msg                  177.3            98.0 (headers 49.3 -> 0.01,
                                                             + headers_elided 0.10; chain_hash
                                                             ~32 -> 0.16)
    Kafka records as JSON / stored            3.9x            7.0x (689.9 B/msg; was 693 with
                                                             ce_time in microseconds, not the
                                                             contract's milliseconds)
    payload + headers sent / stored           3.1x            5.6x (551.1 B/msg)
    rows as JSON / stored                      -             13.9x (1366.7 B/msg)
    + saga_state: Kafka records as JSON       -               6.2x (110.7 B/msg)
    INSERT ... SELECT of 10M rows            91 s            62 s
    flow(saga id) p50 / p99              32-47 / 61-72    29.3-29.4 / 44.5-45.5 ms
    messages by saga id (PK), p50          10-12            13.4-14.1 ms (load: SELECT 1 1.4-1.6)
    same query, full scan, p50                -             173-204 ms: PK 12-15x, flow() 6-7x

flow() now reads its messages and the saga's status in one query (the state as a scalar
subquery): interleaved A/B on the same data, old vs new p50 37.3 vs 33.3 ms and 35.7 vs
32.9 ms (300 lookups each). Where its time goes (p50, same data): the messages query 11-14 ms
(24 columns at ~0.3-0.4 ms each), the saga state query 11-13 ms on its own, of which ~5 ms is
query analysis (EXPLAIN QUERY TREE alone: 5 ms; reading the 8 state columns: 5 ms), the
watermark 2 ms, Python (Arrow to dicts, causal order, header rebuild) < 1 ms.

A later run on a quiet machine (same data, as inserted / after merges): flow() p50/p99
27.4/42.1 and 26.5/33.9 ms; PK messages query p50 12.8/11.9 ms; key-column scan 160/162 ms
(13x/14x); full table scan without PREWHERE (every column read) 2713/2707 ms (212x/228x,
flow() 99x/102x); status counts 0.08 s, cycle times 0.13 s, process map 0.57/0.71 s.

What bounds the ratios (measured with one chDB session, same load):

- chDB's fixed cost is ~1 ms a query (SELECT 1) and ~2 ms for a point lookup of the key column
  alone; every further column read costs ~0.3-0.4 ms even from one granule (a stream, marks,
  a compressed block each). SELECT * of one saga: 28 ms at 8192-row granules, 12 ms at 1024,
  12 ms at 256 (the per-column cost dominates), 6.6 ms with compact parts (one file) but then
  a column scan is 3.5x slower (rejected). Read settings (pread/mmap, buffer sizes, PREWHERE,
  uncompressed cache, skip indexes off) changed nothing beyond noise.
- The full scan reads only the sorted saga_id column (0.2 B/msg compressed, PREWHERE) and
  returns the same rows and columns: 60-85 ms at 8192-row granules, slower at 1024 (more
  granules to filter). So even a key-column-only lookup is ~30x faster than the 8192-row scan:
  50x is out of reach in chDB for a lookup returning every column.
- Bytes: random content is now 76 B of the 98 B/msg (payload_sha256 32 B as hex with entropy
  coding, message_id 18.8, causation_id 16.8, span_id 8.4), each column coded on its own.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from benchstore import fresh_store

from sagascope.instrumentation.contract import CE_SPECVERSION, CE_TIME, SPECVERSION, TRACEPARENT
from sagascope.queries import SagaQueries
from sagascope.store import ChdbStore
from sagascope.store.headers import (
    BIT,
    ELIDABLE,
    REBUILD_COLUMNS,
    elide,
    rebuild,
    rebuild_sql,
    value_sql,
)
from sagascope.store.timetext import rfc3339_ms

# (type, kind, source, step, status, compensates) per outcome.
_PREFIX = [
    ("OrderPlaced", "event", "orders", "place-order", "", ""),
    ("ReserveStock", "command", "orchestrator", "reserve-stock", "", ""),
    ("StockReserved", "event", "inventory", "reserve-stock", "", ""),
    ("RetrievePayment", "command", "orchestrator", "payment", "", ""),
]
_SHIPPING = [
    *_PREFIX,
    ("PaymentReceived", "event", "payment", "payment", "", ""),
    ("ShipOrder", "command", "orchestrator", "shipping", "", ""),
]
_REFUNDING = [
    *_SHIPPING,
    ("ShippingFailed", "event", "shipping", "shipping", "compensating", ""),
    ("RefundPayment", "command", "orchestrator", "refund", "", "payment"),
]
_FLOWS = {
    "completed": [
        *_SHIPPING,
        ("OrderShipped", "event", "shipping", "shipping", "", ""),
        ("NotifyCustomer", "command", "orchestrator", "notify", "", ""),
        ("CustomerNotified", "event", "notification", "notify", "", ""),
        ("OrderCompleted", "event", "orchestrator", "complete", "completed", ""),
    ],
    "failed": [*_PREFIX, ("PaymentFailed", "event", "payment", "payment", "failed", "")],
    "compensated": [
        *_REFUNDING,
        ("PaymentRefunded", "event", "payment", "refund", "", "payment"),
        ("ReleaseStock", "command", "orchestrator", "release", "", "reserve-stock"),
        ("StockReleased", "event", "inventory", "release", "compensated", "reserve-stock"),
    ],
    "compensating": _REFUNDING,
    "running": _PREFIX,
}
# Outcome by saga number % 100.
_MIX = [("completed", 80), ("failed", 10), ("compensated", 6), ("compensating", 2), ("running", 2)]
_SAGA_TYPES = ["order-fulfillment", "order-express", "order-marketplace"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, tuple):
        return "(" + ", ".join(_sql_literal(v) for v in value) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_sql_literal(v) for v in value) + "]"
    return repr(value)


#: One row in this many carries its partition's chain hash: the last row of a link (a
#: partition's rows of one poll), typically 100-500 rows under bulk load.
LINK_ROWS = 200


def elide_sql(received: str) -> tuple[str, str]:
    """(``headers``, ``headers_elided``) SQL from the SQL of the received headers map, by
    ``_headers.elide``'s rules: a header is elided only when received and equal to what its
    column(s) reproduce (``traceparent`` only with a trace id). ``headers_elided`` must be the
    alias of the second expression; checked against ``elide`` itself by :func:`check_rows`.
    """
    terms = []
    for header, _ in ELIDABLE:
        test = f"mapContains({received}, '{header}') AND {received}['{header}'] = {value_sql(header)}"
        if header == TRACEPARENT:
            test += " AND trace_id != ''"
        terms.append(f"if({test}, {1 << BIT[header]}, 0)")
    bits = f"toUInt16({' + '.join(terms)})"
    names = ", ".join(f"'{header}'" for header, _ in ELIDABLE)
    # indexOf is 1-based and 0 for other headers: bit 0 of headers_elided * 2 is never set.
    rest = (
        f"mapFilter((key, v) -> NOT bitTest(toUInt32(headers_elided) * 2, indexOf([{names}], key)), "
        f"{received})"
    )
    return rest, bits


def mean_messages_per_saga() -> float:
    return sum(len(_FLOWS[name]) * share for name, share in _MIX) / 100


def generate_sql(sagas: int, end_epoch_s: float) -> str:
    """INSERT ... SELECT generating every message of ``sagas`` sagas in ClickHouse."""
    bounds, flows = [], []
    acc = 0
    for name, share in _MIX:
        acc += share
        bounds.append(acc)
        flows.append(_FLOWS[name])
    cases = ", ".join(f"o < {b}, {_sql_literal(f)}" for b, f in zip(bounds[:-1], flows[:-1], strict=True))
    flow_expr = f"multiIf({cases}, {_sql_literal(flows[-1])})"
    start = end_epoch_s - sagas * 0.5 - 3600
    stored_headers, elided_bits = elide_sql("received_headers")
    return f"""
INSERT INTO messages (topic, partition, offset, kafka_time, event_time, ingest_time, kafka_key,
    trace_id, span_id, saga_id, saga_type, message_id, causation_id, kind, type, source, step,
    saga_status, compensates, headers, payload, payload_size, payload_sha256, payload_truncated,
    correlation, parse_error, chain_hash, headers_elided)
SELECT * EXCEPT (true_time, received_headers) FROM (
SELECT
    saga_start + toIntervalMillisecond((i - 1) * pace_s * 1000 + cityHash64(k, i) % 900)
        AS true_time,
    concat(m.3, if(m.2 = 'command', '.commands', '.events')) AS topic,
    toUInt32(cityHash64(saga_id) % 6) AS partition,
    rowNumberInAllBlocks() AS offset,
    true_time + toIntervalMillisecond(3 + cityHash64(k, i) % 40) AS kafka_time,
    if(m.3 = 'inventory', true_time - toIntervalSecond(30), true_time) AS event_time,
    kafka_time + toIntervalMillisecond(150) AS ingest_time,
    saga_id AS kafka_key,
    lower(hex(MD5(concat('trace', toString(k), if(i > 5 AND k % 7 = 0, 'b', ''))))) AS trace_id,
    lower(hex(cityHash64(k, i, 'span'))) AS span_id,
    concat('ORD-', leftPad(toString(k), 9, '0')) AS saga_id,
    {_sql_literal(_SAGA_TYPES)}[1 + k % {len(_SAGA_TYPES)}] AS saga_type,
    toString(UUIDNumToString(MD5(concat(toString(k), '/', toString(i))))) AS message_id,
    if(i = 1, '', toString(UUIDNumToString(MD5(concat(toString(k), '/', toString(i - 1))))))
        AS causation_id,
    m.2 AS kind, m.1 AS type, m.3 AS source, m.4 AS step, m.5 AS saga_status,
    m.6 AS compensates,
    mapFilter((key, v) -> v != '', map(
        'traceparent', concat('00-', trace_id, '-', span_id, '-01'),
        'ce_specversion', '1.0', 'ce_id', message_id, 'ce_source', source, 'ce_type', type,
        'ce_time', {value_sql(CE_TIME)},
        'ce_sagaid', saga_id, 'ce_sagatype', saga_type, 'ce_kind', kind,
        'ce_causationid', causation_id, 'ce_step', step, 'ce_sagastatus', saga_status,
        'ce_compensates', compensates)) AS received_headers,
    {stored_headers} AS headers,
    concat('{{"order_id":"', saga_id, '","customer":"C-', toString(cityHash64(k) % 200000),
        '","amount":', toString(round((cityHash64(k, 'amt') % 50000) / 100, 2)),
        ',"currency":"EUR","items":[{{"sku":"SKU-', toString(cityHash64(k, 'sku') % 5000),
        '","qty":', toString(1 + k % 4), '}}],"step":"', step, '","at":"',
        formatDateTime(event_time, '%Y-%m-%dT%H:%i:%S'), '"}}') AS payload,
    toUInt32(length(payload)) AS payload_size,
    lower(hex(SHA256(payload))) AS payload_sha256,
    false AS payload_truncated,
    'headers' AS correlation,
    '' AS parse_error,
    if(offset % {LINK_ROWS} = {LINK_ROWS - 1}, lower(hex(SHA256(concat(toString(k), ':', toString(i))))), '')
        AS chain_hash,
    {elided_bits} AS headers_elided
FROM (
    SELECT number AS k, number % 100 AS o, {flow_expr} AS flow,
        toDateTime64({start}, 3, 'UTC') + toIntervalMillisecond(number * 500) AS saga_start,
        1 + cityHash64(number, 'pace') % 20 AS pace_s
    FROM numbers({sagas})
)
ARRAY JOIN flow AS m, arrayEnumerate(flow) AS i
)"""


def _sent_headers(row: dict[str, Any], event_ms: int) -> dict[str, str]:
    """What the generator's services send with a row: every contract header, empty ones left
    out (as the instrumentation does), from the row's columns alone (not its bits)."""
    sent = {
        TRACEPARENT: f"00-{row['trace_id']}-{row['span_id']}-01",
        CE_SPECVERSION: SPECVERSION,
        CE_TIME: rfc3339_ms(event_ms),
    }
    for header, column in ELIDABLE:
        if header not in sent:
            sent[header] = str(row[column])
    return {header: value for header, value in sent.items() if value}


def check_rows(store: ChdbStore, every: int = 5003) -> int:
    """Rows sampled from ``messages`` (``offset % every = 0``) are stored as the collector
    stores what the generator sends: ``elide`` of the sent headers gives the stored ``headers``
    and ``headers_elided``, and both ``rebuild`` and the baselines' SQL (``rebuild_sql``) give
    the sent headers back. Returns the number of rows checked."""
    rows = store.query(
        f"SELECT headers, headers_elided, {', '.join(REBUILD_COLUMNS)}, "
        f"{rebuild_sql()} AS received FROM messages WHERE offset % {{every:UInt64}} = 0",
        {"every": every},
    ).dicts()
    for row in rows:
        delta = row["event_time"] - _EPOCH
        event_ms = delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
        sent = _sent_headers(row, event_ms)
        assert elide(dict(sent), row, event_ms) == (dict(row["headers"]), row["headers_elided"]), row
        assert rebuild(row) == sent == dict(row["received"]), row
    return len(rows)


def _timed(fn: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def _measure(store: ChdbStore, args: argparse.Namespace, sagas: int, n: int, label: str) -> None:
    print(f"--- {label}")
    queries = SagaQueries(store)
    rng = random.Random(7)
    keys = [f"ORD-{rng.randrange(sagas):09d}" for _ in range(args.lookups)]
    lookup_sql = (
        "SELECT * FROM messages WHERE {where} = {{key:String}} "
        "ORDER BY event_time, topic, partition, offset"
    )
    pk_sql = lookup_sql.format(where="saga_id")
    scan_sql = lookup_sql.format(where="identity(saga_id)")
    # Same rows both ways (checked on a key the timed scans do not use: no warm caches).
    check = {"key": keys[-1]}
    assert store.query(pk_sql, check).rows == store.query(scan_sql, check).rows != []
    it = iter(keys * 2)
    flow_s = _timed(lambda: queries.flow(next(it)), args.lookups)
    it = iter(keys * 2)
    # flow() reads a few granules with one thread; the scan gets every thread.
    pk_s = _timed(lambda: queries._q.run_point(pk_sql, {"key": next(it)}), args.lookups)
    it = iter(keys * 2)
    scan_s = _timed(lambda: store.query(scan_sql, {"key": next(it)}), args.scans)
    # The same scan without PREWHERE: every column of every row is read (a full table scan
    # as a row store would do it). Reported beside, never instead of, the scan above.
    table_scan = {"optimize_move_to_prewhere": 0}
    it = iter(keys * 2)
    table_s = _timed(
        lambda: store.query(scan_sql, {"key": next(it)}, settings=table_scan), max(3, args.scans // 3)
    )
    # chDB's fixed cost: a query reading nothing, and the lookup returning only the key column.
    it = iter(keys * 2)
    one_s = _timed(lambda: queries._q.run_point("SELECT 1"), args.lookups)
    key_sql = "SELECT saga_id FROM messages WHERE saga_id = {key:String}"
    key_s = _timed(lambda: queries._q.run_point(key_sql, {"key": next(it)}), args.lookups)
    print(
        f"chDB floor: SELECT 1 p50 {_pct(one_s, 0.5) * 1e3:.1f} ms, lookup of the key column "
        f"alone p50 {_pct(key_s, 0.5) * 1e3:.1f} ms "
        f"(scan / that = {statistics.median(scan_s) / statistics.median(key_s):.0f}x at best)"
    )
    print(
        f"flow(saga id)            p50 {_pct(flow_s, 0.5) * 1e3:7.1f} ms  "
        f"p99 {_pct(flow_s, 0.99) * 1e3:7.1f} ms   (target p99 <= 100 ms)"
    )
    print(
        f"messages by saga id (PK) p50 {_pct(pk_s, 0.5) * 1e3:7.1f} ms  p99 {_pct(pk_s, 0.99) * 1e3:7.1f} ms"
    )
    print(
        f"same query, full scan    p50 {_pct(scan_s, 0.5) * 1e3:7.1f} ms  "
        f"-> PK lookup {statistics.median(scan_s) / statistics.median(pk_s):.0f}x faster, "
        f"flow() {statistics.median(scan_s) / statistics.median(flow_s):.0f}x "
        f"(target >= 50x)"
    )
    print(
        f"  full table scan (no PREWHERE, every column read) p50 {_pct(table_s, 0.5) * 1e3:7.1f} ms "
        f"-> PK lookup {statistics.median(table_s) / statistics.median(pk_s):.0f}x faster, "
        f"flow() {statistics.median(table_s) / statistics.median(flow_s):.0f}x"
    )

    overview = {
        "status_counts": queries.status_counts,
        "cycle_times": queries.cycle_times,
        "process_map": queries.process_map,
        "variants": lambda: queries.variants(limit=20),
        "transitions": queries.transitions,
        "stalled": queries.stalled,
    }
    for name, fn in overview.items():
        runs = _timed(fn, args.repeat)
        target = "  (target < 1 s)" if name in ("status_counts", "cycle_times", "process_map") else ""
        print(f"{name:24s} median {statistics.median(runs):6.2f} s  min {min(runs):6.2f} s{target}")
    print("status counts:", queries.status_counts())

    sizes = store.query(
        "SELECT table, sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts "
        "WHERE database = {db:String} AND active GROUP BY table",
        {"db": store.database},
    ).rows
    by_table = {t: (int(b), int(u)) for t, b, u in sizes}
    # Baselines: the Kafka records as JSON lines (topic, partition, offset, timestamp, key,
    # headers, value), and the stored rows as JSON lines (every column, as inserted).
    # Also what the service itself sends: the value (JSON payload) and the headers as JSON.
    # The headers are those received (rebuilt: stored rest + elided), not the stored rest.
    received = rebuild_sql()
    sent, record_json, row_json = store.query(
        f"SELECT sum(length(toJSONString({received})) + length(payload)), "
        "sum(length(toJSONString(map("
        "'topic', topic, 'partition', toString(partition), 'offset', toString(offset), "
        "'timestamp', toString(toUnixTimestamp64Milli(kafka_time)), 'key', kafka_key)))"
        f" + length(toJSONString({received})) + length(payload) + 24), "
        "sum(length(formatRowNoNewline('JSONEachRow', COLUMNS('.*')))) FROM messages"
    ).rows[0]
    stored = by_table["messages"][0]
    state = by_table.get("saga_state", (0, 0))[0]
    print(f"stored: messages {stored / n:6.1f} B/msg, + saga_state {(stored + state) / n:6.1f} B/msg")
    baselines = (
        ("sent: payload + headers", sent),
        ("Kafka records as JSON", record_json),
        ("rows as JSON", row_json),
    )
    for label, raw in baselines:
        print(
            f"{label:24s} {raw / n:7.1f} B/msg -> {raw / stored:4.1f}x "
            f"({raw / (stored + state):4.1f}x with saga_state)  (target >= 7x)"
        )
    columns = store.query(
        "SELECT name, sum(data_compressed_bytes) AS c FROM system.columns "
        "WHERE database = {db:String} AND table = 'messages' GROUP BY name ORDER BY c DESC "
        "LIMIT 8",
        {"db": store.database},
    ).rows
    print("largest columns (B/msg):", ", ".join(f"{c} {b / n:.1f}" for c, b in columns))


def merge(store: ChdbStore, *tables: str) -> None:
    """Merge the tables' parts (``OPTIMIZE FINAL``), saying how long it took."""
    t0 = time.perf_counter()
    for table in tables:
        store.command(f"OPTIMIZE TABLE {table} FINAL")
    print(f"\nmerged {', '.join(tables)} (OPTIMIZE FINAL) in {time.perf_counter() - t0:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--path", help="chDB directory (default: a temporary one, removed)")
    parser.add_argument("--lookups", type=int, default=200, help="flow lookups to time")
    parser.add_argument("--scans", type=int, default=10, help="full-scan lookups to time")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each overview query")
    args = parser.parse_args(argv)

    with fresh_store(args.path, "sagascope-bench-") as store:
        sagas = max(1, round(args.messages / mean_messages_per_saga()))
        t0 = time.perf_counter()
        store.command(generate_sql(sagas, time.time()))
        gen_s = time.perf_counter() - t0
        n = store.query("SELECT count() FROM messages").scalar()
        n_sagas = store.query("SELECT uniqExact(saga_id) FROM saga_state").scalar()
        print(f"generated {n:,} messages of {n_sagas:,} sagas in {gen_s:.1f} s")
        kept, hashed = store.query(
            "SELECT countIf(length(headers) > 0), countIf(chain_hash != '') FROM messages"
        ).rows[0]
        checked = check_rows(store, max(1, n // 2000))
        print(
            f"checked {checked:,} sampled rows against elide/rebuild; rows keeping headers: "
            f"{kept:,}; rows with a chain hash: {hashed:,} (1 in {LINK_ROWS})"
        )

        _measure(store, args, sagas, n, "as inserted")
        merge(store, "messages", "saga_state")
        _measure(store, args, sagas, n, "after merges")
    return 0


if __name__ == "__main__":
    sys.exit(main())
