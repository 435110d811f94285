"""Dashboard page render times on a 1,000,000-message store (target: 2 s cold, 1 s warm).

    python bench/bench_dashboard.py [--messages 1000000] [--runs 3]

Generates the messages in SQL (``INSERT ... SELECT FROM numbers(N)``, through the saga-state
materialized view like a collector's inserts) into a fresh chDB directory, then renders each
page with ``streamlit.testing.v1.AppTest`` (the whole app script: sidebar, filters and the
page's queries and figures). The baseline is the same app on a 1,000-message store, measured
in the same run, so the ratio shows how render time grows with the data.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from typing import Any

PAGES = {
    "overview": "",
    "sagas": "views/sagas.py",
    "flow_explorer": "views/flow_explorer.py",
    "stalled_sagas": "views/stalled_sagas.py",
    "failures": "views/failures.py",
    "process_map": "views/process_map.py",
    "time_spent": "views/time_spent.py",
    "alerts": "views/alerts.py",
}
MESSAGES_PER_SAGA = 8
#: A first view (every cache empty) and a rerun (a click, a refresh with no new data).
TARGET_COLD_S = 2.0
TARGET_WARM_S = 1.0
#: The default range (the last hour of data) and the worst case (everything), as URL values.
TIME_RANGES = ("1h", "all")

# One saga = 8 messages; position p (1-based) gives type, source, kind and step. Every 10th
# saga fails at payment and compensates; every 97th stops after asking for shipping (stalled).
# The last message lands 150 s before now (a saga's 8 messages span at most 144 s): data
# newer than the clock would pin a range's end to the moving clock, so a rerun with no new
# data could never reuse a cached answer, which on a live store it does.
_SQL = """
INSERT INTO messages (topic, partition, offset, kafka_time, event_time, ingest_time, kafka_key,
    trace_id, span_id, saga_id, saga_type, message_id, causation_id, kind, type, source, step,
    saga_status, compensates, headers, headers_elided, payload, payload_size, payload_sha256,
    correlation)
SELECT
    concat(source, '.', kind, 's') AS topic, toUInt32(s % 4) AS partition, number AS offset,
    t AS kafka_time, t AS event_time, t AS ingest_time, saga_id AS kafka_key,
    lower(hex(MD5(toString(s)))) AS trace_id, lower(hex(cityHash64(number))) AS span_id,
    saga_id, saga_type, concat('m-', toString(number)) AS message_id,
    if(p = 1, '', concat('m-', toString(number - 1))) AS causation_id,
    kind, type, source, step, saga_status, compensates,
    -- As the collector stores contract headers: those a column reproduces are only bits.
    map() AS headers, {elided:UInt16} AS headers_elided,
    concat('{"saga":"', saga_id, '","amount":', toString(s % 500), ',"error":"',
           if(type = 'PaymentFailed', 'card declined', ''), '"}') AS payload,
    toUInt32(length(payload)) AS payload_size, lower(hex(SHA256(payload))) AS payload_sha256,
    'headers' AS correlation
FROM (
    SELECT number, intDiv(number, 8) AS s, number % 8 + 1 AS p,
        concat('order-', toString(s)) AS saga_id,
        ['order-fulfillment', 'booking', 'payment-retry', 'returns'][s % 4 + 1] AS saga_type,
        s % 10 = 7 AS fails, s % 97 = 5 AS stalls,
        multiIf(fails, ['OrderPlaced', 'ReserveStock', 'StockReserved', 'RetrievePayment',
                        'PaymentFailed', 'ReleaseStock', 'StockReleased', 'OrderCancelled'][p],
                stalls AND p = 8, 'ShipOrder',
                ['OrderPlaced', 'ReserveStock', 'StockReserved', 'RetrievePayment',
                 'PaymentReceived', 'ShipOrder', 'OrderShipped', 'OrderCompleted'][p]) AS type,
        multiIf(fails, ['orders', 'orchestrator', 'inventory', 'orchestrator', 'payment',
                        'orchestrator', 'inventory', 'orchestrator'][p],
                ['orders', 'orchestrator', 'inventory', 'orchestrator', 'payment',
                 'orchestrator', 'shipping', 'orchestrator'][p]) AS source,
        if(type IN ('ReserveStock', 'RetrievePayment', 'ShipOrder', 'ReleaseStock'),
           'command', 'event') AS kind,
        multiIf(fails, ['place', 'reserve-stock', 'reserve-stock', 'payment', 'payment',
                        'release-stock', 'release-stock', 'cancel'][p],
                ['place', 'reserve-stock', 'reserve-stock', 'payment', 'payment', 'shipping',
                 'shipping', 'complete'][p]) AS step,
        multiIf(type = 'PaymentFailed', 'compensating', type = 'OrderCancelled', 'compensated',
                type = 'OrderCompleted', 'completed', '') AS saga_status,
        if(step = 'release-stock', 'reserve-stock', '') AS compensates,
        now64(3) - toIntervalSecond({span_s:UInt32} + 150) + toIntervalMillisecond(
            intDiv(s * {span_s:UInt32} * 1000, {sagas:UInt64})
            + (p - 1) * (500 + (s * 7919) % 20000)) AS t
    FROM numbers({messages:UInt64})
)
"""


def _elided_bits() -> int:
    """``headers_elided`` of a message whose ce_id, ce_type, ce_source, ce_sagaid, ce_sagatype
    and ce_kind headers equal its columns (the collector keeps them only as these bits)."""
    from sagascope.store.headers import BIT

    names = ("ce_id", "ce_type", "ce_source", "ce_sagaid", "ce_sagatype", "ce_kind")
    return sum(1 << BIT[name] for name in names)


# The services' spans of those messages, as the instrumentation reports them: a PRODUCER span
# per message (its traceparent's span id, ending at its Kafka time), a CONSUMER span where the
# next message's service handled it (child of the producer; 5-45 ms in Kafka, 0.2-30 ms of
# handling; the payment handler that declined an error), the next PRODUCER span a child of that handler.
_SPANS_SQL = """
INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, service, start_time, end_time,
    status_code, status_message, saga_id, saga_type, message_id, ingest_time, topic, partition,
    offset)
SELECT trace_id, span, parent, name, kind, service, start_time, end_time, status_code, '',
    saga_id, saga_type, message_id, ingest_time, 'sagascope.spans', 0, rowNumberInAllBlocks()
FROM (
    SELECT trace_id, saga_id, saga_type, message_id, ingest_time, kafka_time, type, source,
        if(causation_id = '', '', lower(hex(cityHash64('consumer', causation_id))))
            AS cause_handler,
        lower(hex(cityHash64('consumer', message_id))) AS handler_span, span_id,
        leadInFrame(source) OVER (PARTITION BY saga_id ORDER BY offset
                                  ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS handled_by,
        leadInFrame(type) OVER (PARTITION BY saga_id ORDER BY offset
                                ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS answered_with,
        kafka_time + toIntervalMillisecond(5 + offset % 41) AS handle_start,
        200 + (offset * 7919) % 30000 AS handle_us
    FROM messages
)
ARRAY JOIN
    [span_id, handler_span] AS span,
    [cause_handler, span_id] AS parent,
    [concat(type, ' send'), concat(type, ' process')] AS name,
    ['PRODUCER', 'CONSUMER'] AS kind,
    [source, handled_by] AS service,
    [toDateTime64(kafka_time, 6) - toIntervalMicrosecond(800), toDateTime64(handle_start, 6)]
        AS start_time,
    [toDateTime64(kafka_time, 6),
     toDateTime64(handle_start, 6) + toIntervalMicrosecond(handle_us)] AS end_time,
    ['UNSET', if(answered_with = 'PaymentFailed', 'ERROR', 'UNSET')] AS status_code
WHERE service != ''
"""

# An open alert for each stalled saga, as the alerter writes it.
_ALERTS_SQL = """
INSERT INTO alerts (alert_id, state, saga_id, saga_type, step, waiting_for, since, threshold_s,
    opened_at, resolved_at, resolution, link, updated_at)
SELECT concat('alert-', saga_id), 'open', saga_id, saga_type, last_message.3,
    'OrderShipped (reply to ShipOrder)', last_message.1, 300.0,
    last_message.1 + toIntervalSecond(300), NULL, '',
    concat('http://127.0.0.1:8501/flow_explorer?saga=', saga_id), now64(3)
FROM saga_state FINAL
WHERE last_message.4 = 'ShipOrder'
"""


def build_store(path: str, database: str, messages: int, span_s: int, *, spans: bool = False,
                alerts: bool = False) -> Any:
    """A fresh chDB database of generated sagas (and their spans and alerts, if asked)."""
    from sagascope.store import ChdbStore, ensure_schema

    store = ChdbStore(path, database)
    ensure_schema(store)
    sagas = max(messages // MESSAGES_PER_SAGA, 1)
    store.command(_SQL, {"messages": messages, "sagas": sagas, "span_s": span_s,
                         "elided": _elided_bits()})
    if spans:
        store.command(_SPANS_SQL)
    if alerts:
        store.command(_ALERTS_SQL)
    return store


def render_times(
    store: Any, runs: int, saga_id: str, time_range: str, pages: list[str]
) -> dict[str, tuple[list[float], list[float]]]:
    """Per page: ``runs`` renders with every cache empty, then ``runs`` warm reruns."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from sagascope.dashboard import APP_PATH, runtime
    from sagascope.settings import Settings

    runtime.configure(Settings(), store)
    times: dict[str, tuple[list[float], list[float]]] = {}
    for name in pages:
        path = PAGES[name]
        at = AppTest.from_file(str(APP_PATH), default_timeout=120)
        if path:
            at.run()  # switch_page needs the pages registered by a first run
            at.switch_page(path)
        at.query_params["range"] = time_range
        if name == "flow_explorer":
            at.query_params["saga"] = saga_id
        cold, warm = [], []
        for i in range(2 * runs):
            if i < runs:
                st.cache_data.clear()
                st.cache_resource.clear()
            started = time.perf_counter()
            at.run()
            (cold if i < runs else warm).append(time.perf_counter() - started)
            if at.exception:
                raise SystemExit(f"{name} failed: {at.exception[0].value}")
        times[name] = (cold, warm)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--baseline-messages", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--span-days", type=float, default=7.0)
    parser.add_argument("--pages", default=",".join(PAGES),
                        help="comma-separated pages to render (default: all)")
    args = parser.parse_args(argv)
    pages = [name.strip() for name in args.pages.split(",") if name.strip()]
    unknown = sorted(set(pages) - set(PAGES))
    if unknown:
        parser.error(f"unknown page(s) {', '.join(unknown)}; pages: {', '.join(PAGES)}")

    path = tempfile.mkdtemp(prefix="bench-dashboard-")
    span_s = int(args.span_days * 86400)
    started = time.perf_counter()
    big = build_store(path, "bench_big", args.messages, span_s)
    print(f"generated {args.messages:,} messages in {time.perf_counter() - started:.1f} s")
    small = build_store(path, "bench_small", args.baseline_messages, span_s)

    from sagascope.dashboard.cached_queries import RESULT_TTL_S

    worst_cold = worst_warm = 0.0
    for time_range in TIME_RANGES:
        base = render_times(small, args.runs, "order-1", time_range, pages)
        full = render_times(big, args.runs, "order-1", time_range, pages)
        print(f"\ntime range {time_range!r}, {args.messages:,} messages (baseline "
              f"{args.baseline_messages:,}); seconds, median of {args.runs}: 'cold' with every "
              f"cache empty (a first view), 'warm' a rerun within {RESULT_TTL_S:g} s (a click)")
        print(f"{'page':<16}{'cold':>7}{'max':>7}{'warm':>7}{'base cold':>11}{'ratio':>7}")
        for name in pages:
            cold, warm = full[name]
            base_cold = statistics.median(base[name][0])
            median_cold = statistics.median(cold)
            worst_cold = max(worst_cold, median_cold)
            worst_warm = max(worst_warm, statistics.median(warm))
            print(f"{name:<16}{median_cold:>7.2f}{max(cold):>7.2f}"
                  f"{statistics.median(warm):>7.2f}{base_cold:>11.2f}"
                  f"{median_cold / base_cold:>6.1f}x")
    ok = worst_cold < TARGET_COLD_S and worst_warm < TARGET_WARM_S
    print(f"\nslowest page: cold {worst_cold:.2f} s (target < {TARGET_COLD_S:g} s), warm "
          f"{worst_warm:.2f} s (target < {TARGET_WARM_S:g} s): {'OK' if ok else 'OVER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
