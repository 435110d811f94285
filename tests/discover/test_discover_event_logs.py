"""Discovery on the two real event logs, replayed without any header: the rules it proposes
tie at least as many records into flows as the logs' case ids do, and each flow is a case."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest
from discover_helpers import collect
from kafka import KafkaProducer
from sagascope.collector.discover import discover, sample_kafka

from sagascope.embedded import create_topics
from sagascope.replay import build_messages, read_log

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
LOGS = ["roadtraffic100traces.csv", "helpdesk.xes.gz"]


def replay_bare(path: Path, topic: str, bootstrap_servers: str) -> list[tuple[str, str]]:
    """Replay the log as ``sagascope replay`` does, minus every header (the key, the case id,
    stays, as a team keying by its business id would); returns (case id, activity) per event."""
    event_log = read_log(path)
    create_topics(bootstrap_servers, {topic: 3})
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=20, acks=1)
    try:
        for key, value, _headers in build_messages(event_log):
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)
    return [(e.case_id, e.activity) for e in event_log.events]


@pytest.mark.slow
@pytest.mark.parametrize("log_file", LOGS)
def test_discovered_rules_rebuild_the_cases_of_a_bare_event_log(
    log_file: str, bootstrap_servers: str, module_store
):
    path = DATA / log_file
    if not path.exists():
        pytest.skip(f"{path} not present")
    topic = f"bare.{re.sub(r'[^A-Za-z0-9]', '-', log_file)}.{os.getpid()}"
    events = replay_bare(path, topic, bootstrap_servers)

    proposal = discover(sample_kafka({"bootstrap_servers": bootstrap_servers},
                                     [re.escape(topic)], per_topic=2000))
    assert len(proposal.rules) == 1
    store = module_store()
    collect(store, bootstrap_servers, [topic], len(events), proposal.rules)

    correlated = store.query("SELECT countIf(saga_id != '') / count() FROM messages").scalar()
    assert correlated >= 1.0  # every event of these logs has a case id
    stored = store.query("SELECT saga_id, groupArray(type) FROM messages GROUP BY saga_id").rows
    ours = {saga_id: Counter(types) for saga_id, types in stored}
    cases: dict[str, Counter[str]] = {}
    for case_id, activity in events:
        cases.setdefault(case_id, Counter())[activity] += 1
    assert ours == cases
