"""Record batches handed over whole (``_records``): parsed exactly as kafka-python parses them,
damage kept as rows, and the consumer hook on the real broker."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
from kafka.record.util import calc_crc32c
from waiting import wait_until

from sagascope.collector.assignment import PartitionState
from sagascope.collector.batch import Batch, add_records
from sagascope.collector.decode.correlate import Correlator
from sagascope.collector.decode.pool import DecodeWorker, decode_chunk
from sagascope.collector.decode.redact import Redactor
from sagascope.collector.decode.rows import DecodeContext
from sagascope.collector.record_batches import (
    DamagedBatch,
    RawBatch,
    _split,
    hand_over_batches,
    parse_batches,
    record_count,
)
from sagascope.settings import RedactionRule
from sagascope.store.audit import row_digest

GZIP = 1
TP = TopicPartition("orders", 0)


Spec = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def records(n: int, start: int = 0) -> list[Spec]:
    """(timestamp, key, value, headers): every shape the parser meets."""
    out = []
    for i in range(start, start + n):
        kind = i % 7
        key: bytes | None = f"order-{i}".encode()
        value: bytes | None = b'{"i": %d, "pad": "%s"}' % (i, b"x" * (i % 50))
        headers: list[tuple[str, bytes | None]] = [
            ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("ce_id", f"01a201da-2017-7c27-9486-{i:012d}".encode()),
            ("ce_sagaid", f"order-{i % 5}".encode()),
        ]
        if kind == 1:
            key = None
        elif kind == 2:
            value = None
        elif kind == 3:
            headers = []
        elif kind == 4:
            headers.append(("ce_step", None))  # a header without a value
            headers.append(("ce_sagaid", b"order-again"))  # repeated: the last one counts
        elif kind == 0 and i % 2:
            headers.insert(1, ("x-bytes", b"\xff\xfe not UTF-8"))
        elif kind == 5:
            value = b"v" * 70_000  # lengths of three varint bytes
            headers.append(("x-long-\u00e9", b"h" * 9000))
        elif kind == 6:
            value = b""
            key = b""
        out.append((1_763_800_000_000 + i * 7 - (i % 3) * 1000, key, value, headers))
    return out


def build(
    specs: list[Spec],
    *,
    base_offset: int = 0,
    magic: int = 2,
    compression: int = 0,
    batch_bytes: int = 4096,
) -> bytes:
    """Concatenated record batches, as a fetch response carries them."""
    out = bytearray()
    offset = base_offset
    i = 0
    while i < len(specs):
        # Offsets relative to the batch; the broker writes the base offset (not under the CRC).
        builder = MemoryRecordsBuilder(magic, compression, batch_bytes, offset=0 if magic == 2 else offset)
        start = offset
        taken = 0
        while i < len(specs):
            ts, key, value, headers = specs[i]
            if builder.append(ts, key, value, headers if magic == 2 else []) is None:
                assert taken, "a record larger than batch_bytes"
                break
            i += 1
            taken += 1
            offset += 1
        builder.close()
        batch = bytearray(builder.buffer())
        if magic == 2:
            struct.pack_into(">q", batch, 0, start)
        out += batch
    return bytes(out)


def kafka_python_fields(data: bytes, fetch_offset: int = 0) -> list[tuple]:
    """What kafka-python's own consumer makes of the same bytes (headers as Fields has them)."""
    part = Fetcher.PartitionRecords(fetch_offset, TP, MemoryRecords(data))
    return [fields_of(r) for r in part.take(None)]


def fields_of(record) -> tuple:
    """A kafka-python record as ``parse_batches`` gives it: the headers a dict of their text
    when every value is UTF-8, else kafka-python's list."""
    headers: Any = record.headers
    with contextlib.suppress(AttributeError, UnicodeDecodeError):
        headers = {name: value.decode("utf-8") for name, value in headers}
    return (record.offset, record.timestamp, record.key, record.value, headers)


def with_attributes(batch: bytes, flags: int) -> bytes:
    """A copy of one v2 batch with attribute bits set and its CRC recomputed."""
    raw = bytearray(batch)
    (attributes,) = struct.unpack_from(">h", raw, 21)
    struct.pack_into(">h", raw, 21, attributes | flags)
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])))
    return bytes(raw)


def batches_of(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from(">i", data, pos + 8)
        out.append(data[pos : pos + 12 + length])
        pos += 12 + length
    return out


# -- parsing -------------------------------------------------------------------------------


def test_uncompressed_batches_parse_exactly_as_kafka_python_parses_them():
    data = build(records(300), base_offset=1000)
    assert len(batches_of(data)) > 10  # several batches, some of one huge record
    ours = list(parse_batches(data, -1))
    assert len(ours) == 300
    assert ours == kafka_python_fields(data, 1000)


@pytest.mark.parametrize("floor", [1000, 1001, 1137, 1299, 1300])
def test_offsets_below_the_floor_are_skipped_even_mid_batch(floor):
    data = build(records(300), base_offset=1000, batch_bytes=64 * 1024)
    ours = list(parse_batches(data, floor))
    assert [f[0] for f in ours] == list(range(floor, 1300))
    assert ours == [f for f in kafka_python_fields(data, 1000) if f[0] >= floor]


def test_compressed_and_old_format_batches_go_through_kafka_python():
    specs = records(120)
    gzip = build(specs, base_offset=50, compression=GZIP)
    assert list(parse_batches(gzip, -1)) == kafka_python_fields(gzip, 50)
    assert [f[0] for f in parse_batches(gzip, 100)] == list(range(100, 170))
    legacy = build(specs, base_offset=50, magic=1, batch_bytes=256 * 1024)
    assert list(parse_batches(legacy, 60)) == [f for f in kafka_python_fields(legacy, 50) if f[0] >= 60]
    mixed = build(specs[:40], base_offset=0) + build(specs[40:80], base_offset=40, compression=GZIP)
    assert list(parse_batches(mixed, -1)) == kafka_python_fields(mixed, 0)


def test_log_append_time_batches_take_the_brokers_time():
    (batch,) = batches_of(build(records(3)))
    stamped = with_attributes(batch, 0x08)
    max_ts = struct.unpack_from(">q", stamped, 35)[0]
    ours = list(parse_batches(stamped, -1))
    assert [f[1] for f in ours] == [max_ts] * 3
    assert ours == kafka_python_fields(stamped)


def test_a_batch_failing_its_crc_becomes_its_offsets_with_the_error():
    first, second, third = batches_of(build(records(30), base_offset=500, batch_bytes=600))[:3]
    flipped = bytearray(second)
    flipped[-3] ^= 0xFF  # a byte of the last record's last header
    out = list(parse_batches(first + bytes(flipped) + third, -1))
    damaged = [f for f in out if isinstance(f, DamagedBatch)]
    assert len(damaged) == 1
    base = struct.unpack_from(">q", second)[0]
    last = base + struct.unpack_from(">i", second, 23)[0]
    assert (damaged[0].base_offset, damaged[0].last_offset) == (base, last)
    assert "CRC" in str(damaged[0])
    good = [f[0] for f in out if not isinstance(f, DamagedBatch)]
    third_last = struct.unpack_from(">q", third)[0] + struct.unpack_from(">i", third, 23)[0]
    assert good == [o for o in range(500, third_last + 1) if not base <= o <= last]
    # kafka-python would raise on it (and stall the partition there)
    with pytest.raises(Exception, match="crc"):
        kafka_python_fields(bytes(flipped))


def test_a_batch_that_does_not_parse_keeps_its_offsets_from_the_floor():
    (batch,) = batches_of(build(records(5), base_offset=10))
    # Claim one record more than the batch holds, with a valid CRC: the structure is wrong.
    raw = bytearray(batch)
    struct.pack_into(">i", raw, 57, 6)
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])))
    (damaged,) = list(parse_batches(bytes(raw), 12))
    assert isinstance(damaged, DamagedBatch)
    assert (damaged.base_offset, damaged.last_offset) == (12, 14)
    assert "does not parse" in str(damaged)
    assert list(parse_batches(bytes(raw), 15)) == []  # wholly below the floor: nothing


def test_damaged_offsets_are_stored_as_rows_with_the_error_and_chained():
    ctx = DecodeContext(Correlator(()), Redactor(()), 2048)
    first, second = batches_of(build(records(20), base_offset=0, batch_bytes=900))[:2]
    flipped = bytearray(second)
    flipped[70] ^= 0x01
    data, digests, errors, rows, start, next_offset, _ = decode_chunk(
        ctx, ("orders", 0, 1_763_800_000_000, -1, True, first + bytes(flipped))
    )
    n_first = struct.unpack_from(">i", first, 57)[0]
    n_second = struct.unpack_from(">i", second, 57)[0]
    assert (rows, start, next_offset, errors) == (n_first + n_second, 0, n_first + n_second, n_second)
    import orjson

    stored = [orjson.loads(line) for line in data.splitlines()]
    assert [r["offset"] for r in stored] == list(range(n_first + n_second))
    for row in stored[n_first:]:
        assert "failed its CRC check" in row["parse_error"] and row["payload_size"] == 0
    assert digests == "".join(row_digest(r) for r in stored)


# -- the decoding worker -------------------------------------------------------------------


def test_raw_batches_are_stored_exactly_as_records_of_kafka_python_are(store):
    rules = ((), (RedactionRule(path="/pad"),), 2048)
    ctx = DecodeContext(Correlator(()), Redactor(rules[1]), 2048)
    specs = records(200)
    data = build(specs, base_offset=0)
    raw_items = [
        RawBatch(b, struct.unpack_from(">q", b)[0],
                 struct.unpack_from(">q", b)[0] + struct.unpack_from(">i", b, 23)[0],
                 struct.unpack_from(">i", b, 57)[0])
        for b in batches_of(data)
    ]
    assert record_count(raw_items) == 200
    consumer_records = Fetcher.PartitionRecords(0, TP, MemoryRecords(data)).take(None)

    expected = Batch()
    state_a = PartitionState("orders", 0, None, "")
    add_records(expected, state_a, consumer_records[:90], ctx, spans=False)
    add_records(expected, state_a, consumer_records[90:], ctx, spans=False)

    worker = DecodeWorker(rules)
    try:
        got = Batch()
        state_b = PartitionState("orders", 0, None, "")
        cut = next(i for i, item in enumerate(raw_items) if item.offset >= 89)
        worker.submit(state_b, raw_items[: cut + 1], got)
        worker.submit(state_b, raw_items[cut:], got)  # a replayed batch: skipped by offset
        worker.drain(got, wait=True)
    finally:
        worker.close()
    got.materialize()
    for row in expected.messages + got.messages:
        row.pop("ingest_time")
    # the links differ (the poll boundaries do), the rows do not
    for row in expected.messages + got.messages:
        row.pop("chain_hash")
    assert got.messages == expected.messages
    assert state_b.buffered_next == 200 and got.ranges == {("orders", 0): [0, 199]}


# -- the consumer hook, on the real broker ------------------------------------------------


def test_the_consumer_hands_over_whole_batches_for_chosen_topics_only(bootstrap_servers, make_topic):
    raw_topic, plain_topic = make_topic("raw", 2), make_topic("plain", 1)
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=5, batch_size=4096)
    specs = [  # kafka-python's producer sends no header without a value
        s for s in records(140)
        if (s[2] is None or len(s[2]) < 5000) and all(v is not None for _, v in s[3])
    ]
    for i, (_, key, value, headers) in enumerate(specs):
        producer.send(raw_topic, value, key=key, headers=headers, partition=i % 2)
        producer.send(plain_topic, value, key=key, headers=headers)
    producer.flush()
    producer.close()

    def read(hook: bool) -> tuple[dict, dict]:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
            max_partition_fetch_bytes=2048,  # several fetches, some cutting a batch short
        )
        if hook:
            assert hand_over_batches(consumer, lambda topic: topic == raw_topic)
        tps = [TopicPartition(raw_topic, 0), TopicPartition(raw_topic, 1), TopicPartition(plain_topic, 0)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        got: dict = {tp: [] for tp in tps}

        def read_all() -> bool:
            for tp, items in consumer.poll(timeout_ms=200).items():
                got[tp].extend(items)
            return sum(record_count(v) for v in got.values()) >= 2 * len(specs)

        wait_until(read_all, 30, "every record read back", interval_s=0)
        positions = {tp: consumer.position(tp) for tp in tps}
        consumer.close()
        return got, positions

    plain, plain_positions = read(hook=False)
    handed, handed_positions = read(hook=True)
    assert handed_positions == plain_positions
    for tp, items in handed.items():
        want = [fields_of(r) for r in plain[tp]]
        if tp.topic == raw_topic:
            assert items and all(type(i) is RawBatch for i in items)
            assert [i.base_offset for i in items] == sorted({i.base_offset for i in items})
            assert list(parse_batches(b"".join(i.data for i in items), -1)) == want
        else:
            assert [fields_of(r) for r in items] == want


def test_control_batches_are_skipped_and_the_position_moves_past_them():
    first, second = batches_of(build(records(10), base_offset=0, batch_bytes=700))[:2]
    control = with_attributes(second, 0x20)
    part = Fetcher.PartitionRecords(0, TP, MemoryRecords(first + control))
    items = list(_split(part, MemoryRecords(first + control)))
    assert [i.base_offset for i in items] == [0]
    last = struct.unpack_from(">q", control)[0] + struct.unpack_from(">i", control, 23)[0]
    assert part.next_fetch_offset == last + 1


def test_older_kafka_python_or_read_committed_keeps_the_usual_records(monkeypatch):
    import kafka

    class Consumer:
        def __init__(self, config: dict[str, str]) -> None:
            self.config = config
            self._fetcher = object()

    assert not hand_over_batches(Consumer({"isolation_level": "read_committed"}), lambda t: True)
    monkeypatch.setattr(kafka, "__version__", "2.2.15")
    assert not hand_over_batches(Consumer({}), lambda t: True)


def test_old_format_messages_are_handed_over_one_by_one_and_parse_as_kafka_python_parses_them():
    specs: list[Spec] = [(ts, key, (value or b"")[:100], []) for ts, key, value, _ in records(30)]
    data = build(specs, magic=0, base_offset=7, batch_bytes=256 * 1024)  # one message set
    part = Fetcher.PartitionRecords(7, TP, MemoryRecords(data))
    items = list(_split(part, MemoryRecords(data)))
    assert [i.offset for i in items] == list(range(7, 37))
    assert part.next_fetch_offset == 37
    assert list(parse_batches(b"".join(i.data for i in items), 10)) == kafka_python_fields(data, 7)[3:]


@pytest.mark.parametrize("length", [-12, -1, 0, 13])
def test_a_batch_declaring_an_impossible_length_raises_as_kafka_python_does(length):
    first, second = batches_of(build(records(10), base_offset=0, batch_bytes=700))[:2]
    broken = bytearray(second)
    struct.pack_into(">i", broken, 8, length)
    data = first + bytes(broken)
    part = Fetcher.PartitionRecords(0, TP, MemoryRecords(data))
    split = _split(part, MemoryRecords(data))
    assert next(split).base_offset == 0  # the whole batch before it is handed over
    with pytest.raises(CorruptRecordError, match="declares"):
        next(split)
    with pytest.raises(ValueError, match="not whole"):
        list(parse_batches(data, -1))
