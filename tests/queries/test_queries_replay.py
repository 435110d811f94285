"""Event-log replay: reading CSV/XES (plain or gzipped) and the messages it sends to Kafka."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest
from waiting import collect, polled

from sagascope.instrumentation import contract as c
from sagascope.replay import ReplayError, build_messages, read_log, replay

CSV = """Case ID,Activity,Complete Timestamp,Resource
c1,Register,2012/10/09 14:50:17,ann
c2,Register,2012/10/09 15:00:00,bob
c1,Approve,2012/10/09 14:55:00,ann
c1,Archive,2012/10/10 09:00:00,ann
"""

XES = """<?xml version="1.0" encoding="utf-8" ?>
<log xes.version="1.0" xmlns="http://www.xes-standard.org/">
  <string key="concept:name" value="tickets" />
  <trace>
    <string key="concept:name" value="T1" />
    <event>
      <string key="concept:name" value="Open" />
      <date key="time:timestamp" value="2020-01-01T10:00:00+01:00" />
    </event>
    <event>
      <string key="concept:name" value="Close" />
      <date key="time:timestamp" value="2020-01-01T12:00:00+01:00" />
      <string key="sagastatus" value="failed" />
    </event>
  </trace>
</log>
"""


def _headers(message) -> dict[str, str]:
    return {k: v.decode() for k, v in message[2]}


def test_csv_columns_are_detected_and_events_ordered_by_time(tmp_path: Path):
    path = tmp_path / "loans.csv"
    path.write_text(CSV)
    log = read_log(path)
    assert (log.name, log.cases) == ("loans", 2)
    assert [(e.case_id, e.activity) for e in log.events] == [
        ("c1", "Register"), ("c1", "Approve"), ("c2", "Register"), ("c1", "Archive")
    ]
    assert log.events[0].timestamp == datetime(2012, 10, 9, 14, 50, 17, tzinfo=UTC)
    assert log.events[0].resource == "ann"


def test_gzipped_xes_is_read_with_its_own_name(tmp_path: Path):
    path = tmp_path / "t.xes.gz"
    path.write_bytes(gzip.compress(XES.encode()))
    log = read_log(path)
    assert log.name == "tickets"
    assert [(e.case_id, e.activity, e.status) for e in log.events] == [
        ("T1", "Open", ""), ("T1", "Close", "failed")
    ]
    assert log.events[0].timestamp == datetime(2020, 1, 1, 9, 0, tzinfo=UTC)


def test_messages_carry_the_contract_headers_and_causation_chain(tmp_path: Path):
    path = tmp_path / "loans.csv"
    path.write_text(CSV)
    messages = list(build_messages(read_log(path)))
    headers = [_headers(m) for m in messages]
    c1 = [h for h in headers if h[c.CE_SAGAID] == "c1"]
    assert [h[c.CE_TYPE] for h in c1] == ["Register", "Approve", "Archive"]
    assert c.CE_CAUSATIONID not in c1[0]
    assert c1[1][c.CE_CAUSATIONID] == c1[0][c.CE_ID]
    assert c1[2][c.CE_CAUSATIONID] == c1[1][c.CE_ID]
    assert [h.get(c.CE_SAGASTATUS, "") for h in c1] == ["", "", "completed"]
    assert c1[0][c.CE_TIME] == "2012-10-09T14:50:17.000Z"
    assert {h[c.CE_SAGATYPE] for h in headers} == {"loans"}
    assert {h[c.CE_STEP] for h in c1} == {"Register", "Approve", "Archive"}
    trace_ids = {c.parse_traceparent(h[c.TRACEPARENT]).trace_id for h in c1}
    assert len(trace_ids) == 1  # one trace per case
    assert messages[0][0] == b"c1"


def test_a_status_in_the_log_wins_over_the_completed_default(tmp_path: Path):
    path = tmp_path / "t.xes"
    path.write_text(XES)
    headers = [_headers(m) for m in build_messages(read_log(path))]
    assert [h.get(c.CE_SAGASTATUS, "") for h in headers] == ["", "failed"]


def test_column_options_and_clear_errors(tmp_path: Path):
    path = tmp_path / "odd.csv"
    path.write_text("who;what;when\nx;A;2020-01-01 00:00:00\nx;B;2020-01-02 00:00:00\n")
    with pytest.raises(ReplayError, match="cannot find the case column"):
        read_log(path)
    log = read_log(path, case_column="who", activity_column="what", time_column="when")
    assert [e.activity for e in log.events] == ["A", "B"]
    with pytest.raises(ReplayError, match="case column 'nope' is not in the log"):
        read_log(path, case_column="nope", activity_column="what", time_column="when")
    bad = tmp_path / "bad.csv"
    bad.write_text("case,activity,timestamp\nx,A,yesterday\n")
    with pytest.raises(ReplayError, match=r"bad.csv:2: column 'timestamp'"):
        read_log(bad)
    with pytest.raises(ReplayError, match="unknown log format"):
        (tmp_path / "x.json").write_text("{}")
        read_log(tmp_path / "x.json")


def test_replay_sends_every_event_to_kafka(tmp_path: Path, make_topic, bootstrap_servers):
    from kafka import KafkaConsumer, TopicPartition

    path = tmp_path / "loans.csv"
    path.write_text(CSV)
    topic = make_topic("replay", partitions=1)
    progress: list[tuple[int, int]] = []
    stats = replay(read_log(path), bootstrap_servers, topic,
                   progress=lambda done, total: progress.append((done, total)))
    assert (stats.events, stats.cases) == (4, 2)
    assert progress[-1] == (4, 4)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        records = collect(lambda: polled(consumer, 500), 4, 30)
    finally:
        consumer.close()
    assert [dict(r.headers)[c.CE_TYPE].decode() for r in records] == [
        "Register", "Approve", "Register", "Archive"
    ]


def test_speed_must_be_positive(tmp_path: Path):
    path = tmp_path / "loans.csv"
    path.write_text(CSV)
    with pytest.raises(ReplayError, match="speed must be positive"):
        replay(read_log(path), "127.0.0.1:1", "t", speed=0)
