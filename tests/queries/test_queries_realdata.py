"""Real event logs replayed through Kafka and the collector agree with PM4Py on the same files."""

from __future__ import annotations

import re
import threading
from collections import Counter
from pathlib import Path

import pytest
from waiting import wait_until

from sagascope.collector import Collector
from sagascope.embedded import create_topics
from sagascope.queries import SagaQueries
from sagascope.replay import read_log, replay
from sagascope.settings import CollectorSettings

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
LOGS = ["roadtraffic100traces.csv", "helpdesk.xes.gz"]


def _pm4py_frame(path: Path):
    import pandas as pd
    import pm4py

    if path.name.endswith(".csv"):
        df = pd.read_csv(path)
        return pm4py.format_dataframe(
            df, case_id="case:concept:name", activity_key="concept:name",
            timestamp_key="time:timestamp",
        )
    return pm4py.read_xes(str(path))


@pytest.mark.slow
@pytest.mark.parametrize("log_file", LOGS)
def test_replayed_log_matches_pm4py(log_file, store, bootstrap_servers):
    import pm4py

    path = DATA / log_file
    if not path.exists():
        pytest.skip(f"{path} not present")
    event_log = read_log(path)
    topic = f"replay.{re.sub(r'[^A-Za-z0-9]', '-', event_log.name)}.{store.database}"
    create_topics(bootstrap_servers, {topic: 3})
    replay(event_log, bootstrap_servers, topic)

    settings = CollectorSettings(
        group_id=f"g-{store.database}", include=re.escape(topic), flush_interval_s=0.3,
        max_poll_interval_ms=3000, batch_rows=5000,
    )
    # With kafka-python's default 45 s session timeout, joins on Tansu take ~23 s each.
    collector = Collector(
        store, bootstrap_servers, settings,
        consumer_config={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
    )
    stop = threading.Event()
    thread = threading.Thread(target=collector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: store.query("SELECT count() FROM messages").scalar() >= len(event_log.events),
            120, f"{len(event_log.events)} stored messages", interval_s=0.2,
        )
    finally:
        stop.set()
        thread.join(30)

    queries = SagaQueries(store)
    df = _pm4py_frame(path)

    # case count, all completed (last event of each case marked)
    counts = queries.status_counts()
    assert counts["completed"] == df["case:concept:name"].nunique() == event_log.cases

    # case durations (cycle times, from the original event times)
    ours = sorted(round(s.duration_s, 3) for s in queries.sagas(limit=1_000_000))
    theirs = sorted(round(float(d), 3) for d in pm4py.get_all_case_durations(df))
    assert ours == theirs
    overall = queries.cycle_times()[0]
    assert overall.count == len(theirs)
    assert overall.max_s == pytest.approx(max(theirs))

    # directly-follows counts
    dfg, starts, ends = pm4py.discover_dfg(df)
    pm = queries.process_map()
    assert {(e.source, e.target): e.count for e in pm.edges} == dict(dfg)
    assert {n.activity: n.starts for n in pm.nodes if n.starts} == dict(starts)
    assert {n.activity: n.ends for n in pm.nodes if n.ends} == dict(ends)

    # variant frequencies
    variants = pm4py.get_variants(df)
    theirs_v = Counter({tuple(v): (c if isinstance(c, int) else len(c)) for v, c in variants.items()})
    ours_v = Counter({v.activities: v.count for v in queries.variants(limit=100_000)})
    assert ours_v == theirs_v
