"""Discovery on the two real event logs, replayed without any header: the rules it proposes
tie at least as many records into flows as the logs' case ids do, and each flow is a case."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest
from discover_helpers import collect

from sagascope.collector.discover import discover, sample_kafka
from sagascope.embedded import create_topics
from sagascope.replay import read_log, replay

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
LOGS = ["roadtraffic100traces.csv", "helpdesk.xes.gz"]


def replay_bare(path: Path, topic: str, bootstrap_servers: str) -> list[tuple[str, str]]:
    """``sagascope replay --without-headers``: plain JSON keyed by case id (as a team keying
    by its business id would); returns (case id, activity) per event."""
    event_log = read_log(path)
    create_topics(bootstrap_servers, {topic: 3})
    replay(event_log, bootstrap_servers, topic, with_headers=False)
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

    # every event of these logs has a case id, and the rule (no header) found each
    correlated = store.query(
        "SELECT countIf(saga_id != '' AND startsWith(correlation, 'rule:')) / count() "
        "FROM messages").scalar()
    assert correlated >= 1.0
    stored = store.query("SELECT saga_id, groupArray(type) FROM messages GROUP BY saga_id").rows
    ours = {saga_id: Counter(types) for saga_id, types in stored}
    cases: dict[str, Counter[str]] = {}
    for case_id, activity in events:
        cases.setdefault(case_id, Counter())[activity] += 1
    assert ours == cases
