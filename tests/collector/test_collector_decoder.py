"""Decoding in child processes (DecodePool): same rows as in-process, order, chain, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import pytest
from collector_helpers import ProducedLog, make_record, producer, running, send_all
from waiting import wait_until

from sagascope.collector import Collector
from sagascope.collector.assignment import Partition, PartitionState
from sagascope.collector.batch import Batch, add_records
from sagascope.collector.decode import pool as _decoder
from sagascope.collector.decode.correlate import Correlator
from sagascope.collector.decode.pool import DecodePool, DecodeWorker
from sagascope.collector.decode.redact import Redactor
from sagascope.collector.decode.rows import DecodeContext
from sagascope.collector.record_batches import ParsedRecords, as_records, record_count
from sagascope.collector.writer import write_batch
from sagascope.settings import CorrelationRule, RedactionRule
from sagascope.store import ChdbStore, ensure_schema, verify
from sagascope.store.audit import link_hash, row_digest

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CAP = 2048
CORRELATION = (
    # A JSON pointer compiles to a closure in the child: only the settings are pickled.
    CorrelationRule(
        topic=r"legacy\..*",
        saga_id="/order/id",
        type=r"re:\"event\":\s*\"(\w+)\"",
        saga_type_value="order-fulfillment",
        source="/by",
    ),
    CorrelationRule(topic="text", saga_id=r"re:order-(\d+)"),
)
REDACTION = (
    RedactionRule(path="/card/number"),
    RedactionRule(pattern=r"\b\d{4}-\d{4}-\d{4}-\d{4}\b", replacement="[CARD]"),
)
RULES = (CORRELATION, REDACTION, CAP)
DECODER_CMD = "sagascope.collector.decode.pool"


def ctx() -> DecodeContext:
    return DecodeContext(Correlator(CORRELATION), Redactor(REDACTION), CAP)


def value_for(topic: str, offset: int) -> tuple[bytes | None, list[tuple[str, bytes]], bytes | None]:
    """(value, headers, key) of a record: a mix of everything the decoder meets."""
    kind = offset % 10
    if kind == 0:
        headers = [
            ("traceparent", TRACEPARENT),
            ("ce_id", f"m-{offset}".encode()),
            ("ce_sagaid", f"order-{offset % 4}".encode()),
            ("ce_type", b"OrderPlaced"),
            ("ce_time", b"2025-11-22T10:15:30.123Z"),
            ("x-custom", b"kept"),
        ]
        return json.dumps({"n": offset, "card": {"number": "4111"}}).encode(), headers, b"k"
    if kind == 1:
        return b"{not json", [("ce_sagaid", b"s1")], None
    if kind == 2:
        return b'{"a": "\xff"}', [], None
    if kind == 3:
        return json.dumps({"blob": "x" * (CAP * 3), "n": offset}).encode(), [], b"big"
    if kind == 4:
        if topic.startswith("legacy."):
            value = {"order": {"id": offset}, "event": "Shipped", "by": "wms"}
        else:
            value = {"note": "paid with 1234-5678-9012-3456", "n": offset}
        return json.dumps(value).encode(), [], b"order-key"
    if kind == 5:
        return f"ship order-{offset} now".encode(), [], None
    if kind == 6:
        return None, [], b"tombstone"
    if kind == 7:
        return b"{}", [("ce_sagaid", b"\xff\xfe"), ("traceparent", b"00-nope-01")], None
    if kind == 8:
        return json.dumps({"card": {"number": "4111-1111-1111-1111"}, "n": offset}).encode(), [], None
    return json.dumps({"plain": offset}).encode(), [], None


def records_for(topic: str, partition: int, offsets) -> list:
    out = []
    for o in offsets:
        value, headers, key = value_for(topic, o)
        out.append(
            make_record(
                value, topic=topic, partition=partition, offset=o, key=key, headers=headers,
                timestamp=-1 if o % 13 == 12 else 1_763_800_000_000 + o,
            )
        )
    return out


@contextmanager
def frozen_time_ns(monkeypatch: pytest.MonkeyPatch, ns: int) -> Iterator[None]:
    """Every ingest time the same (it is audited: the chain hashes can then be compared)."""
    with monkeypatch.context() as m:
        m.setattr(time, "time_ns", lambda: ns)
        yield


def message_rows(store) -> list[tuple]:
    return store.query("SELECT * FROM messages ORDER BY topic, partition, offset").rows


def encoded_rows(batch: Batch) -> list[dict]:
    return [orjson.loads(line) for c in batch.encoded for line in c.data.splitlines() if line]


def decoder_children() -> list[int]:
    """Live (not zombie) child processes of this process running the decoder."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == me and DECODER_CMD in cmdline and state != "Z":
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    """Whether /proc/<pid> exists (a zombie counts: it was never waited for)."""
    return os.path.exists(f"/proc/{pid}")


def check_partition_chunks(batch: Batch, states: dict[tuple[str, int], PartitionState], expected):
    """Every partition's rows are its expected offsets in order, each chunk one sealed link."""
    for key, offsets in expected.items():
        chunks = [c for c in batch.encoded if (c.topic, c.partition) == key]
        got = []
        head = ""
        for chunk in chunks:
            rows = [orjson.loads(line) for line in chunk.data.splitlines() if line]
            assert len(rows) == chunk.rows
            assert all(r["chain_hash"] == "" for r in rows[:-1])
            head = link_hash(head, [row_digest(r) for r in rows])
            assert rows[-1]["chain_hash"] == head, f"link of {key} at {rows[0]['offset']}"
            got.extend(r["offset"] for r in rows)
        assert got == list(offsets), key
        state = states[key]
        assert state.buffered_next == offsets[-1] + 1
        assert state.buffered_chain == head
        assert batch.ranges[key] == [offsets[0], offsets[-1]]


def check_stored(store, batch: Batch, expected) -> None:
    """The batch written: the store's chain verifies over exactly the expected rows."""
    write_batch(store, batch)
    report = verify(store)
    assert report.ok and report.rows == sum(len(v) for v in expected.values())


@contextmanager
def started_pool(workers: int) -> Iterator[DecodePool]:
    pool = DecodePool(RULES, workers)
    try:
        pool.start()
        yield pool
    finally:
        pool.close()


@contextmanager
def hung_child_pool(monkeypatch) -> Iterator[tuple[DecodePool, int]]:
    """(pool, pid): a pool of one child that is stopped (alive, never answers); an answer is
    overdue after a second."""
    monkeypatch.setattr(_decoder, "_ANSWER_TIMEOUT_S", 1.0)
    with started_pool(1) as pool:
        (worker,) = pool._workers
        pid = worker._process.pid
        os.kill(pid, signal.SIGSTOP)
        yield pool, pid


# -- 1. the same rows as in-process ------------------------------------------------------


def parsed(records: list) -> list[ParsedRecords]:
    """The records as the confluent-kafka client hands them over: one tuple each."""
    first = records[0]
    fields = [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in records]
    return [ParsedRecords(first.topic, first.partition, fields)]


@pytest.mark.parametrize("form", ["records", "parsed"])
def test_the_pool_stores_exactly_what_in_process_decoding_stores(store, chdb_path, monkeypatch, form):
    parts = [("orders", 0, range(0, 40)), ("orders", 1, range(5, 37)),
             ("legacy.wms", 0, range(0, 30)), ("text", 2, range(100, 125))]
    pool = DecodePool(RULES, 2)
    assert pool.start()
    # A second database beside the shared ``store``: the two decode paths write side by side.
    other = ChdbStore(chdb_path, f"{store.database}_inproc")
    ensure_schema(other)
    try:
        pooled, local = Batch(), Batch()
        pooled_states = {(t, p): PartitionState(t, p, None, "") for t, p, _ in parts}
        local_states = {(t, p): PartitionState(t, p, None, "") for t, p, _ in parts}
        with frozen_time_ns(monkeypatch, 1_763_900_000_123_000_000):
            for t, p, offsets in parts:
                offsets = list(offsets)
                for i in range(0, len(offsets), 11):  # several links per partition
                    chunk = records_for(t, p, offsets[i : i + 11])
                    items = chunk if form == "records" else parsed(chunk)
                    assert record_count(items) == len(chunk)
                    pool.submit(pooled_states[(t, p)], items, pooled)
                    add_records(local, local_states[(t, p)], as_records(items), ctx(), spans=False)
        pool.drain(pooled, wait=True)
        # The children did the decoding (nothing fell back in-process).
        for worker in pool._workers:
            assert worker._restarts == 0
        assert sum(w._process is not None for w in pool._workers) == 2
        assert not pooled.messages and pooled.encoded
        assert pooled.rows == local.rows == sum(len(o) for _, _, o in parts)
        assert pooled.ranges == local.ranges
        assert pooled.consumed == local.consumed
        assert pooled.parse_errors == local.parse_errors and pooled.parse_errors
        for key, st in pooled_states.items():
            assert (st.buffered_next, st.buffered_chain, st.buffered_kafka_ms) == (
                local_states[key].buffered_next,
                local_states[key].buffered_chain,
                local_states[key].buffered_kafka_ms,
            )
        write_batch(store, pooled)
        write_batch(other, local)
        a, b = message_rows(store), message_rows(other)
        assert len(a) == pooled.rows
        assert a == b
        assert verify(store).ok and verify(other).ok
        # The rules were applied in the child.
        by_key = {(r[0], r[1], r[2]): r for r in a}
        names = list(store.query("SELECT * FROM messages LIMIT 1").column_names)
        row = dict(zip(names, by_key[("legacy.wms", 0, 4)], strict=True))
        assert (row["saga_id"], row["type"], row["source"]) == ("4", "Shipped", "wms")
        assert row["correlation"] == r"rule:legacy\..*"
        row = dict(zip(names, by_key[("text", 2, 105)], strict=True))
        assert row["saga_id"] == "105" and row["correlation"] == "rule:text"
        row = dict(zip(names, by_key[("orders", 0, 8)], strict=True))
        assert "4111-1111" not in row["payload"] and "[REDACTED]" in row["payload"]
        row = dict(zip(names, by_key[("orders", 0, 4)], strict=True))
        assert "[CARD]" in row["payload"]
        row = dict(zip(names, by_key[("orders", 0, 3)], strict=True))
        assert row["payload_truncated"]
    finally:
        pool.close()
        other.command(f"DROP DATABASE IF EXISTS {other.database}")



# -- 2. order and chaining over many chunks ------------------------------------------------


def test_many_interleaved_chunks_stay_in_order_and_chain(store):
    with started_pool(2) as pool:
        batch = Batch()
        keys = [("orders", 0), ("orders", 1), ("legacy.wms", 0)]
        states = {k: PartitionState(*k, None, "") for k in keys}
        next_offset = {k: 10 * i for i, k in enumerate(keys)}
        expected: dict[tuple[str, int], list[int]] = {k: [] for k in keys}
        for n in range(50):
            key = keys[n % 3]
            size = 1 + (n * 7) % 9
            offsets = list(range(next_offset[key], next_offset[key] + size))
            next_offset[key] += size
            records = records_for(*key, offsets)
            if n % 5 == 4:
                # A replayed fetch: offsets already submitted are skipped.
                records = records_for(*key, range(offsets[0] - 3, offsets[0])) + records
            pool.submit(states[key], records, batch)
            expected[key].extend(offsets)
            if n % 4 == 3:
                pool.drain(batch, wait=False)
        pool.drain(batch, wait=True)
        assert pool.pending_records == 0
        check_partition_chunks(batch, states, expected)
        for st in states.values():
            assert st.submitted_next == st.buffered_next
        # A fetch entirely below what is buffered adds nothing.
        before = batch.rows
        pool.submit(states[keys[0]], records_for(*keys[0], range(0, 5)), batch)
        pool.drain(batch, wait=True)
        assert batch.rows == before
        check_stored(store, batch, expected)


def test_a_waiting_drain_leaves_the_asked_number_of_records_queued(store):
    """The loop waits for the children only until one batch is left queued for them, so they
    never run dry while it waits; a full drain applies everything, in order."""
    worker = DecodeWorker(RULES)
    assert worker.start()
    try:
        batch = Batch()
        state = PartitionState("orders", 0, None, "")
        for n in range(20):
            worker.submit(state, records_for("orders", 0, range(50 * n, 50 * n + 50)), batch)
        # A last chunk the child needs about a second for: the drain below must not wait
        # for it (a child that got ahead may have answered some of the small ones already).
        big = 40_000
        worker.submit(state, records_for("orders", 0, range(1000, 1000 + big)), batch)
        assert worker.pending_records == 1000 + big
        worker.drain(batch, wait=True, keep=big)
        assert worker.pending_records == big  # the 20 small chunks applied, the big one queued
        assert batch.rows == 1000
        worker.drain(batch, wait=True)
        assert worker.pending_records == 0
        expected = {("orders", 0): list(range(1000 + big))}
        check_partition_chunks(batch, {("orders", 0): state}, expected)
    finally:
        worker.close()


# -- 3. a child killed mid-stream ------------------------------------------------------


def worker_of(pool: DecodePool, key: tuple[str, int]) -> DecodeWorker:
    """The worker ``key``'s chunks go to: its owner, or the next dealt round-robin."""
    owner = pool._owner.get(key)
    return owner if owner is not None else pool._workers[len(pool._owner) % len(pool._workers)]


@pytest.mark.parametrize("stopped_first", [False, True], ids=["answering", "stopped"])
def test_a_killed_child_loses_and_reorders_nothing(store, stopped_first):
    with started_pool(2) as pool:
        batch = Batch()
        keys = [("orders", 0), ("orders", 1), ("orders", 2)]
        states = {k: PartitionState(*k, None, "") for k in keys}
        victim = worker_of(pool, keys[0])
        pid = victim._process.pid
        if stopped_first:  # nothing it was sent is answered
            os.kill(pid, signal.SIGSTOP)
        expected: dict[tuple[str, int], list[int]] = {k: [] for k in keys}
        nxt = dict.fromkeys(keys, 0)
        for n in range(60):
            key = keys[n % 3]
            offsets = list(range(nxt[key], nxt[key] + 150))
            nxt[key] += 150
            pool.submit(states[key], records_for(*key, offsets), batch)
            expected[key].extend(offsets)
        if not stopped_first:  # some answered, some not
            wait_until(lambda: victim._answers.qsize() >= 1, 10, "a first answer")
        os.kill(pid, signal.SIGKILL)
        pool.drain(batch, wait=True)
        if stopped_first:
            assert victim._restarts == 1 and victim._process is None
            assert not alive(pid)
        # else it may have answered everything before it died: its death shows on the next
        # chunk sent to it.
        check_partition_chunks(batch, states, expected)
        # Later chunks still go through: a new child is started.
        for _ in range(2):
            for key in keys:
                offsets = list(range(nxt[key], nxt[key] + 20))
                nxt[key] += 20
                pool.submit(states[key], records_for(*key, offsets), batch)
                expected[key].extend(offsets)
            pool.drain(batch, wait=True)
        assert not alive(pid)
        assert victim._process is not None and victim._process.pid != pid
        assert victim._restarts == 1
        check_partition_chunks(batch, states, expected)
        check_stored(store, batch, expected)


def test_a_hung_child_is_replaced_and_its_chunks_decoded_in_process(store, monkeypatch):
    with hung_child_pool(monkeypatch) as (pool, pid):
        key = ("dec.hung", 0)
        states = {key: PartitionState(*key, None, "")}
        batch = Batch()
        pool.submit(states[key], records_for(*key, range(40)), batch)
        started = time.monotonic()
        pool.drain(batch, wait=True)
        assert time.monotonic() - started < 10
        assert not alive(pid)
        check_partition_chunks(batch, states, {key: list(range(40))})
        write_batch(store, batch)
        assert verify(store).ok


def test_a_hung_child_is_replaced_even_when_the_loop_never_waits(store, monkeypatch):
    """At low traffic the collector only drains without waiting: an overdue chunk still
    counts as a hung child."""
    with hung_child_pool(monkeypatch) as (pool, pid):
        key = ("dec.hung.nowait", 0)
        states = {key: PartitionState(*key, None, "")}
        batch = Batch()
        pool.submit(states[key], records_for(*key, range(5)), batch)
        pool.drain(batch, wait=False)
        assert batch.rows == 0  # not overdue yet
        time.sleep(1.2)
        pool.drain(batch, wait=False)
        assert not alive(pid)
        check_partition_chunks(batch, states, {key: list(range(5))})


def test_repeated_deaths_leave_decoding_in_process(store):
    worker = DecodeWorker(RULES)
    state = PartitionState("orders", 0, None, "")
    batch = Batch()
    pids = []
    try:
        offset = 0
        for _ in range(_decoder._MAX_RESTARTS + 2):
            if worker.start():
                pids.append(worker._process.pid)
                os.kill(worker._process.pid, signal.SIGKILL)
            worker.submit(state, records_for("orders", 0, range(offset, offset + 30)), batch)
            offset += 30
            worker.drain(batch, wait=True)
        assert worker._process is None and not worker.start()
        assert len(pids) == _decoder._MAX_RESTARTS + 1
        assert not any(alive(p) for p in pids)
        check_partition_chunks(batch, {("orders", 0): state}, {("orders", 0): list(range(offset))})
        write_batch(store, batch)
        assert verify(store).ok
    finally:
        worker.close()


# -- 4. close, and a child that cannot start ----------------------------------------------


def test_close_leaves_no_child_running():
    pool = DecodePool(RULES, 2)
    assert pool.start()
    pids = [w._process.pid for w in pool._workers]
    assert all(alive(p) for p in pids)
    batch = Batch()
    state = PartitionState("orders", 0, None, "")
    pool.submit(state, records_for("orders", 0, range(50)), batch)
    pool.drain(batch, wait=True)
    pool.close()
    assert not any(alive(p) for p in pids)
    assert all(w._process is None for w in pool._workers)
    assert not decoder_children()


def test_close_with_chunks_still_in_flight_leaves_no_child():
    pool = DecodePool(RULES, 1)
    pool.start()
    pid = pool._workers[0]._process.pid
    batch = Batch()
    state = PartitionState("orders", 0, None, "")
    for i in range(10):
        pool.submit(state, records_for("orders", 0, range(i * 100, (i + 1) * 100)), batch)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 6
    assert not alive(pid)


class _NoPopen:
    def __init__(self, *args, **kwargs):
        raise OSError("no processes today")


@pytest.mark.parametrize("how", ["popen-raises", "no-interpreter", "child-exits"])
def test_a_child_that_cannot_start_decodes_in_process(store, monkeypatch, how):
    spawned: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        p = real_popen(*args, **kwargs)
        spawned.append(p)
        return p

    if how == "popen-raises":
        monkeypatch.setattr(_decoder.subprocess, "Popen", _NoPopen)
    else:
        monkeypatch.setattr(_decoder.subprocess, "Popen", recording_popen)
        exe = "/nonexistent/python3" if how == "no-interpreter" else "/bin/false"
        monkeypatch.setattr(_decoder.sys, "executable", exe)
    pool = DecodePool(RULES, 2)
    try:
        started = pool.start()
        if how != "child-exits":
            assert not started
        batch = Batch()
        keys = [("orders", 0), ("orders", 1), ("legacy.wms", 0)]
        states = {k: PartitionState(*k, None, "") for k in keys}
        expected: dict[tuple[str, int], list[int]] = {k: [] for k in keys}
        for n in range(30):
            key = keys[n % 3]
            offsets = list(range(len(expected[key]), len(expected[key]) + 10))
            pool.submit(states[key], records_for(*key, offsets), batch)
            expected[key].extend(offsets)
            if n % 7 == 0:
                pool.drain(batch, wait=False)
        pool.drain(batch, wait=True)
        if how == "child-exits":
            # Each child dies at once; a new one is tried per death until decoding stays
            # in-process. Nothing is lost meanwhile.
            for _ in range(3 * (_decoder._MAX_RESTARTS + 2)):
                for key in keys:
                    offsets = list(range(len(expected[key]), len(expected[key]) + 5))
                    pool.submit(states[key], records_for(*key, offsets), batch)
                    expected[key].extend(offsets)
                pool.drain(batch, wait=True)
            assert all(w._restarts > _decoder._MAX_RESTARTS for w in pool._workers)
            # (A child found dead while sent the rules ends the attempts at once.)
            assert 2 <= len(spawned) <= 2 * (_decoder._MAX_RESTARTS + 1)
        check_partition_chunks(batch, states, expected)
        assert all(w._process is None for w in pool._workers)
        assert all(not w.start() for w in pool._workers)  # decoding stays in-process
        write_batch(store, batch)
        assert verify(store).ok
    finally:
        pool.close()
    monkeypatch.undo()
    assert not any(alive(p.pid) for p in spawned)
    assert all(p.returncode is not None for p in spawned)
    assert not decoder_children()


# -- 5. end to end ---------------------------------------------------------------------


def stored_offsets(store, topic: str) -> set[tuple[str, int, int]]:
    rows = store.query(
        "SELECT topic, partition, offset FROM messages WHERE topic = {t:String}", {"t": topic}
    ).rows
    return {(t, int(p), int(o)) for t, p, o in rows}


def test_collectors_with_and_without_decoding_processes_store_every_record(
    store, bootstrap_servers, make_topic, collector_settings
):
    topics = {0: make_topic("dec0", partitions=3), 2: make_topic("dec2", partitions=3)}
    logs = {w: ProducedLog() for w in topics}
    with producer(bootstrap_servers) as p:
        for workers, topic in topics.items():
            items = []
            for i in range(2000):
                value, headers, key = value_for(topic, i)
                items.append((topic, key or f"k{i % 17}".encode(), value, headers, ""))
            send_all(p, items, logs[workers])
    collectors = {
        w: Collector(
            store,
            bootstrap_servers,
            collector_settings(
                include=t.replace(".", r"\."), decode_workers=w, payload_cap_bytes=CAP,
                correlation=CORRELATION, redaction=REDACTION, batch_rows=500,
            ),
        )
        for w, t in topics.items()
    }
    before = set(decoder_children())
    for c in collectors.values():
        c.start()
    try:
        wait_until(lambda: len(set(decoder_children()) - before) == 2, 20, "2 decoder processes")
        for t in topics.values():
            wait_until(lambda t=t: len(stored_offsets(store, t)) >= 2000, 90, f"2000 rows of {t}")
    finally:
        stoppers = [threading.Thread(target=c.stop) for c in collectors.values()]
        for s in stoppers:
            s.start()
        for s in stoppers:
            s.join()
    for w, t in topics.items():
        assert stored_offsets(store, t) == logs[w].acked
        assert store.query(
            "SELECT count() FROM messages WHERE topic = {t:String}", {"t": t}
        ).scalar() == 2000
        assert verify(store, t.replace(".", r"\.")).ok
    assert verify(store).ok
    assert not set(decoder_children()) - before
    assert not decoder_children()



def test_until_started_the_pool_decodes_in_the_calling_thread():
    pool = DecodePool(RULES, 2)
    try:
        batch = Batch()
        state = PartitionState("orders", 0, None, "")
        pool.submit(state, records_for("orders", 0, range(40)), batch)
        assert pool.pending_records == 0 and batch.rows == 40  # decoded at once, here
        assert all(w._process is None for w in pool._workers) and not decoder_children()
    finally:
        pool.close()


def test_a_collector_at_light_traffic_starts_no_decoding_process(
    store, bootstrap_servers, make_topic, collector_settings
):
    topic = make_topic("light", partitions=2)
    log = ProducedLog()
    before = set(decoder_children())
    collector = Collector(store, bootstrap_servers, collector_settings(include=topic, decode_workers=2))
    with running(collector):
        wait_until(collector.ready.is_set, 60, "partitions positioned")
        with producer(bootstrap_servers) as p:
            for i in range(5):
                send_all(p, [(topic, None, b'{"n": %d}' % i, [], "")] * 4, log)
        wait_until(lambda: len(stored_offsets(store, topic)) == 20, 60, "20 rows")
        assert not set(decoder_children()) - before
    assert stored_offsets(store, topic) == log.acked


class _PositionedConsumer:
    """Just the consumer calls progress makes: the position is past what was fetched."""

    def position(self, partition):
        return 100

    def highwater(self, partition):
        return 100


@pytest.mark.parametrize("decoding", [True, False], ids=["records-decoding", "nothing-read"])
def test_progress_takes_no_position_while_a_partitions_first_records_decode(
    store, collector_settings, decoding
):
    """A fresh partition (nothing stored) whose first records are still in a decoding child
    must not take the consumer's position (past those records) as its stored offset."""
    collector = Collector(store, "127.0.0.1:1", collector_settings(include="dec.progress"))
    collector._consumer = _PositionedConsumer()
    state = PartitionState("dec.progress", 0, None, "")
    if decoding:
        state.submitted_next = 40  # offsets 0-39 handed to a child, not yet buffered
    collector._table.states[Partition("dec.progress", 0)] = state
    collector._write_progress()
    assert state.stored_next == (None if decoding else 100)
