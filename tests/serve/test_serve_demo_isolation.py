"""``sagascope demo --bootstrap-servers`` on a broker that already carries a team's own system
with the demo's topic names: the team's records and consumers are left as they were."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.structs import OffsetAndMetadata

from sagascope.embedded import EmbeddedBroker, create_topics

pytestmark = pytest.mark.slow

# A team's real topics, named as the demo names its own.
THEIR_TOPICS = ("payments.commands", "inventory.commands", "inventory.events")
THEIR_GROUP = "team-payments"


@pytest.fixture(scope="module")
def their_broker() -> Iterator[str]:
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


def _their_system(bootstrap: str, topics: tuple[str, ...]) -> None:
    """Records of the team's own services on ``topics``, and their group's committed offsets."""
    create_topics(bootstrap, dict.fromkeys(topics, 2))
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for topic in topics:
        for n in range(6):
            producer.send(topic, f'{{"order": {n}}}'.encode(), key=f"order-{n}".encode(),
                          headers=[("ce_source", b"payments-svc"), ("ce_type", b"Charge")])
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=THEIR_GROUP,
                             enable_auto_commit=False)
    partitions = [TopicPartition(t, p) for t in topics for p in (0, 1)]
    consumer.assign(partitions)
    consumer.commit({tp: OffsetAndMetadata(2, "", -1) for tp in partitions})
    consumer.close()


def _records(bootstrap: str, topics: tuple[str, ...]) -> dict[TopicPartition, list[tuple]]:
    """Every record of ``topics``: offset, key, value and headers, by partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    partitions = [TopicPartition(t, p) for t in topics for p in (0, 1)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    found: dict[TopicPartition, list[tuple]] = {tp: [] for tp in partitions}
    for record in consumer:
        found[TopicPartition(record.topic, record.partition)].append(
            (record.offset, record.key, record.value, tuple(record.headers)))
    consumer.close()
    return found


def _group_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {tp: meta.offset
                for tp, meta in admin.list_group_offsets(THEIR_GROUP)[THEIR_GROUP].items()}
    finally:
        admin.close()


def _end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        existing = consumer.topics()
        partitions = [TopicPartition(t, p) for t in topics if t in existing
                      for p in sorted(consumer.partitions_for_topic(t) or ())]
        return consumer.end_offsets(partitions)
    finally:
        consumer.close()


def _demo(bootstrap: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir(exist_ok=True)
    env = {**os.environ, "SAGASCOPE_STORE_PATH": str(tmp_path / "store")}
    env.pop("SAGASCOPE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "sagascope", "demo", "--bootstrap-servers", bootstrap,
         "--no-dashboard", "--rate", "10", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )


def test_demo_leaves_a_system_with_its_topic_names_untouched(their_broker: str,
                                                             tmp_path: Path) -> None:
    _their_system(their_broker, THEIR_TOPICS)
    records, offsets = _records(their_broker, THEIR_TOPICS), _group_offsets(their_broker)
    assert sum(map(len, records.values())) == 18 and len(offsets) == 6

    result = _demo(their_broker, tmp_path, "--duration", "20")

    assert result.returncode == 0, result.stdout + result.stderr
    demo_topics = _end_offsets(their_broker, ["sagascope-demo.orders.commands",
                                              "sagascope-demo.payments.commands"])
    assert sum(demo_topics.values()) > 0, "the demo ran, under its own prefix"
    assert _records(their_broker, THEIR_TOPICS) == records
    assert _group_offsets(their_broker) == offsets


def test_demo_refuses_topics_of_its_prefix_holding_other_records(their_broker: str,
                                                                 tmp_path: Path) -> None:
    theirs = tuple(f"team.{name}" for name in THEIR_TOPICS)
    _their_system(their_broker, theirs)
    ends = _end_offsets(their_broker, list(theirs))

    result = _demo(their_broker, tmp_path, "--topic-prefix", "team.", "--duration", "5")

    assert result.returncode == 2
    assert "team.payments.commands" in result.stderr
    assert "not a demo saga id" in result.stderr
    assert _end_offsets(their_broker, list(theirs)) == ends


def test_demo_runs_again_on_the_topics_it_wrote(their_broker: str, tmp_path: Path) -> None:
    first = _demo(their_broker, tmp_path / "first", "--topic-prefix", "again.", "--duration", "8")
    assert first.returncode == 0, first.stdout + first.stderr
    written = _end_offsets(their_broker, ["again.orders.commands"])
    assert sum(written.values()) > 0

    second = _demo(their_broker, tmp_path / "second", "--topic-prefix", "again.",
                   "--duration", "8")

    assert second.returncode == 0, second.stdout + second.stderr
    assert sum(_end_offsets(their_broker, ["again.orders.commands"]).values()) > sum(
        written.values())
