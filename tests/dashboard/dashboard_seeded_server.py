"""Serve the real dashboard over a freshly seeded chDB store (run as a subprocess by tests/bench).

    python dashboard_seeded_server.py STORE_DIR [REFRESH_S]
prints ``URL <url>`` then ``SAGAS <json {status: saga_id}>`` and serves until stdin closes.
Commands on stdin, one per line, each answered by one line on stdout:

- ``queries``: ``QUERIES <json {"watermark": n, "other": n}>``, the store queries run so far
  in this process (counted at ``ChdbStore.query``), the watermark checks apart;
- ``traffic``: store one more saga, just now (the watermark moves); ``TRAFFIC <saga id>``.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seeded_spans import span_rows
from seeding import order_saga, seed, seed_scenarios

from sagascope.dashboard import serve
from sagascope.settings import load_settings
from sagascope.store import ChdbStore, ensure_schema

#: Store queries run in this process: "watermark" (the live check) and "other".
QUERIES: Counter[str] = Counter()
_count_lock = threading.Lock()


def _count_queries() -> None:
    """Count every query the dashboard runs in this process, at the store."""
    original = ChdbStore.query

    def counted(self: ChdbStore, sql: str, *args: object, **kwargs: object) -> object:
        kind = "watermark" if "max(ingest_time)" in sql and "progress" in sql else "other"
        with _count_lock:
            QUERIES[kind] += 1
        return original(self, sql, *args, **kwargs)  # type: ignore[arg-type]

    ChdbStore.query = counted  # type: ignore[assignment,method-assign]


def _alert(alert_id: str, state: str, saga_id: str, now: datetime) -> dict[str, object]:
    since = now - timedelta(hours=1)
    return {
        "alert_id": alert_id, "state": state, "saga_id": saga_id,
        "saga_type": "order-fulfillment", "step": "payment",
        "waiting_for": "PaymentReceived (reply to RetrievePayment)", "since": since,
        "threshold_s": 300.0, "opened_at": since + timedelta(minutes=5), "resolved_at": None,
        "resolution": "", "link": f"http://127.0.0.1:8501/flow_explorer?saga={saga_id}",
        "updated_at": now,
    }


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    store = ChdbStore(sys.argv[1], "dashboard")
    ensure_schema(store)
    now = datetime.now(UTC)
    ids = seed_scenarios(store, now)
    outcomes = ["completed"] * 12 + ["failed"] * 2 + ["compensated"] * 2 + ["compensating"]
    traced = [
        order_saga(f"order-{1000 + i}", outcome, start=now - timedelta(minutes=50 - 2 * i),
                   step_s=1.0 + i % 5)
        for i, outcome in enumerate(outcomes)
    ]
    seed(store, traced)
    # Their services report spans; the scenarios' sagas (order-<status>) report none.
    store.insert("spans", [row for saga in traced for row in span_rows(saga)])
    ids["traced_failed"] = "order-1012"
    # The inventory service's clock runs 30 s behind in this one.
    seed(store, order_saga("order-skewed", "completed", start=now - timedelta(minutes=20),
                           inventory_skew_s=-30))
    ids["skewed"] = "order-skewed"
    store.insert("alerts", [_alert(f"a-{status}", status, ids["stalled"], now)
                            for status in ("open",)])
    overrides: dict[str, object] = {"dashboard.host": "127.0.0.1"}
    if len(sys.argv) > 2:
        overrides["dashboard.refresh_s"] = float(sys.argv[2])
    settings = load_settings(overrides=overrides, environ={})
    _count_queries()
    handle = serve(settings, store, port=0, block=False)
    print(f"URL {handle.url}", flush=True)
    print(f"SAGAS {json.dumps(ids)}", flush=True)
    traffic = itertools.count(1)
    for line in sys.stdin:
        if line.strip() == "queries":
            with _count_lock:
                print(f"QUERIES {json.dumps(dict(QUERIES))}", flush=True)
        elif line.strip() == "traffic":
            saga_id = f"live-{next(traffic)}"
            seed(store, order_saga(saga_id, "completed",
                                   start=datetime.now(UTC) - timedelta(seconds=8)))
            print(f"TRAFFIC {saga_id}", flush=True)
    handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
