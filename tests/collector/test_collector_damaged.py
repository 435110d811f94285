"""A record batch damaged in the broker's log, read through the real broker by each client:
its offsets are stored as rows carrying the damage, nothing after it is held back, and the
damaged bytes are never stored as if they had been sent."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from collector_helpers import producer, running
from kafka.record.default_records import DefaultRecordBatchBuilder
from waiting import wait_until

from sagascope.broker_check import kafka_request
from sagascope.collector import Collector
from sagascope.store import verify


def damaged_batch(values: list[bytes]) -> bytes:
    """A v2 record batch of ``values`` with one payload byte flipped after its CRC was taken."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=False, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=1 << 20,
    )
    now = int(time.time() * 1000)
    for i, value in enumerate(values):
        builder.append(i, timestamp=now, key=None, value=value, headers=[("ce_sagaid", b"s1")])
    raw = bytearray(builder.build())
    raw[-2] ^= 0xFF  # inside the last record's value: the batch still parses, its CRC fails
    return bytes(raw)


def produce_raw(bootstrap_servers: str, topic: str, partition: int, batch: bytes) -> None:
    """Send ``batch`` as it is with a Produce request (v3) on the Kafka protocol: no client
    would send a batch whose CRC is wrong, a damaged disk or a broken proxy would."""

    def text(value: str) -> bytes:
        data = value.encode()
        return struct.pack(">h", len(data)) + data

    body = (
        struct.pack(">hhi", -1, 1, 10_000)  # no transaction, acks=1, timeout
        + struct.pack(">i", 1) + text(topic)
        + struct.pack(">iii", 1, partition, len(batch)) + batch
    )
    host, port = bootstrap_servers.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        answer = kafka_request(sock, 0, 3, body)  # Produce v3
    # 1 topic (name), 1 partition: partition index then its error code
    name_size = struct.unpack_from(">h", answer, 4)[0]
    error = struct.unpack_from(">h", answer, 6 + name_size + 8)[0]
    assert error == 0, f"the broker refused the batch (error {error})"


@pytest.mark.slow
@pytest.mark.parametrize("decode_workers", [2, 0], ids=["decoding-processes", "in-process"])
def test_a_damaged_batch_becomes_rows_carrying_the_damage_and_the_partition_goes_on(
    store, bootstrap_servers, make_topic, collector_settings, consumer_client, decode_workers
):
    if consumer_client == "kafka-python" and decode_workers == 0:
        pytest.skip(
            "without decoding processes kafka-python parses records itself and raises on a "
            "damaged batch at every poll (documented in docs/internals.md)"
        )
    topic = make_topic("damaged", partitions=1)
    with producer(bootstrap_servers) as p:
        p.send(topic, b'{"n": 0}', headers=[("ce_sagaid", b"s1")]).get(10)
    produce_raw(bootstrap_servers, topic, 0, damaged_batch([b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']))
    with producer(bootstrap_servers) as p:
        p.send(topic, b'{"n": 4}', headers=[("ce_sagaid", b"s1")]).get(10)
    collector = Collector(store, bootstrap_servers, collector_settings(topic, decode_workers=decode_workers))
    with running(collector):
        wait_until(
            lambda: store.query(
                "SELECT count() FROM messages WHERE topic = {t:String}", {"t": topic}
            ).scalar() == 5,
            60,
            "5 rows: the good record, 3 damaged offsets, the record after them",
        )
    rows = store.query(
        "SELECT offset, payload, parse_error FROM messages WHERE topic = {t:String} ORDER BY offset",
        {"t": topic},
    ).rows
    assert [r[0] for r in rows] == [0, 1, 2, 3, 4]
    assert (rows[0][1], rows[0][2]) == ('{"n": 0}', "")
    assert (rows[4][1], rows[4][2]) == ('{"n": 4}', "")
    for offset, payload, error in rows[1:4]:
        assert "CRC" in error, (offset, error)
        assert payload == "", "the damaged bytes are not stored as if they were sent"
    report = verify(store)
    assert report.ok, report
