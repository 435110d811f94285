"""Kafka record batches as they arrive, parsed by the decoding processes instead of kafka-python.

kafka-python turns every fetched record into a ``ConsumerRecord`` in pure Python, on the
thread that polls: about 22 us a record, the whole cost of a bare consume loop.
:func:`hand_over_batches` makes the consumer return each record batch (message format v2)
whole, as a :class:`RawBatch` of its bytes; a decoding process parses it with
:func:`parse_batches` (a few microseconds a record) next to decoding it (the spans topic,
and every topic when there are no decoding processes, come as kafka-python's records).
kafka-python still does everything else: group membership, fetching, positions, commits.
confluent-kafka parses in C; its records come as :class:`ParsedRecords`.

The CRC of every batch is checked as kafka-python checks it (``check_crcs``). A batch that is
compressed or in the old message formats (v0/v1) is parsed by kafka-python's own record
classes. A batch that fails its CRC or does not parse becomes one
row per offset it declares, each carrying the error: the offsets are kept, the damage is on
record, and the partition does not stall on it.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import kafka
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.record.memory_records import MemoryRecords
from kafka.record.util import calc_crc32c

log = logging.getLogger(__name__)

#: Record batch v2 header: base offset, length, leader epoch, magic, CRC, attributes, last
#: offset delta, first and max timestamp, producer id and epoch, base sequence, record count.
_BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
_HEADER_SIZE = _BATCH_HEADER.size  # 61
_OFFSET_LENGTH = struct.Struct(">qi")
#: The smallest length a batch can declare (a v0 message: kafka-python's RECORD_OVERHEAD_V0).
_MIN_LENGTH = 14
#: Bytes before ``length`` is counted (base offset and length).
_LOG_OVERHEAD = 12
_CRC_FROM = 21  # the CRC covers the batch from its attributes on
_COMPRESSION = 0x07
_LOG_APPEND_TIME = 0x08
_CONTROL = 0x20
#: A damaged batch becomes one row per offset it declares: at most this many.
_MAX_DAMAGED_OFFSETS = 1 << 20

#: (offset, timestamp, key, value, headers) of a record, as decoding reads it. The headers
#: are a dict of their text when every value is UTF-8 (a repeated name keeps its last value,
#: as decoding keeps it), else kafka-python's list of (name, value bytes or None).
Fields = tuple[
    int, int | None, bytes | None, bytes | None, dict[str, str] | list[tuple[str, bytes | None]]
]


class RawBatch:
    """One record batch of a partition, as fetched (``offset`` is its last offset, which is
    what kafka-python compares with the fetch position to drop batches already read)."""

    __slots__ = ("base_offset", "count", "data", "offset")

    def __init__(self, data: bytes, base_offset: int, last_offset: int, count: int) -> None:
        self.data = data
        self.base_offset = base_offset
        self.offset = last_offset
        self.count = count

    def __repr__(self) -> str:
        return f"RawBatch(offsets {self.base_offset}-{self.offset}, {self.count} records)"


class Record(NamedTuple):
    """The fields of a record that decoding reads, as kafka-python's ``ConsumerRecord`` names them."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    key: bytes | None
    value: bytes | None
    headers: Any


class ParsedRecords:
    """Records of one partition that the Kafka client parsed already (confluent-kafka), as
    :data:`Fields` tuples: they go to the decoding processes as they are, with no object per
    record in between (``offset`` is the last offset, as with :class:`RawBatch`)."""

    __slots__ = ("count", "fields", "offset", "partition", "topic")

    def __init__(self, topic: str, partition: int, fields: list[Fields | DamagedBatch]) -> None:
        self.topic = topic
        self.partition = partition
        self.fields = fields
        last = fields[-1]
        self.offset = last.last_offset if isinstance(last, DamagedBatch) else last[0]
        self.count = len(fields)

    def records(self) -> list[Record | DamagedBatch]:
        """One :class:`Record` per record (for decoding in the collector's own thread); a
        damaged batch stays a :class:`DamagedBatch`."""
        topic, partition = self.topic, self.partition
        return [
            f if isinstance(f, DamagedBatch) else Record(topic, partition, *f) for f in self.fields
        ]

    def __repr__(self) -> str:
        return f"ParsedRecords({self.topic}[{self.partition}] to {self.offset}, {self.count} records)"


@dataclass(frozen=True)
class DamagedBatch:
    """A batch that failed its CRC check or could not be parsed: the offsets it covers (from
    the floor on) and what is wrong, which each of their rows carries as its parse error."""

    message: str
    base_offset: int
    last_offset: int

    def __str__(self) -> str:
        return self.message


_BATCHES = (RawBatch, ParsedRecords)


def as_records(items: list[Any]) -> list[Any]:
    """A poll's list for one partition as record objects, for decoding in the collector's
    own thread (parsed batches expanded; a damaged batch stays a :class:`DamagedBatch`)."""
    if items and type(items[0]) is ParsedRecords:
        return [record for item in items for record in item.records()]
    return items


def record_count(items: list[Any]) -> int:
    """Records in a poll's list for one partition: records, raw or parsed batches."""
    if items and type(items[0]) in _BATCHES:
        return sum(item.count for item in items)
    return len(items)


# -- the consumer side ---------------------------------------------------------------------


def hand_over_batches(consumer: Any, raw_topic: Callable[[str], bool]) -> bool:
    """Make ``consumer.poll`` return :class:`RawBatch` items for topics where ``raw_topic``
    is true (other topics as usual). False, changing nothing, when this kafka-python is not
    one whose fetcher this was written against (3.x) or the consumer reads only committed
    transactions (aborted batches must then be filtered, which kafka-python does)."""
    fetcher = getattr(consumer, "_fetcher", None)
    base = getattr(Fetcher, "PartitionRecords", None)
    version = tuple(int(p) for p in kafka.__version__.split(".")[:1] if p.isdigit())
    if (
        version < (3,)
        or fetcher is None
        or base is None
        or not hasattr(base, "_unpack_records")
        or "_buffer" not in getattr(MemoryRecords, "__slots__", ())  # what _split reads
        or str(getattr(consumer, "config", {}).get("isolation_level", "read_uncommitted"))
        != "read_uncommitted"
    ):
        log.info("kafka-python %s: records parsed by kafka-python", kafka.__version__)
        return False

    class PartitionBatches(base):  # type: ignore[misc, valid-type]
        def _unpack_records(self, tp: Any, records: Any, *args: Any) -> Iterator[Any]:
            if not raw_topic(tp.topic):
                return super()._unpack_records(tp, records, *args)
            return _split(self, records)

    # ``_parse_fetched_data`` builds ``self.PartitionRecords(...)``: an instance attribute
    # takes the place of the nested class for this consumer only.
    fetcher.PartitionRecords = PartitionBatches
    return True


def _split(part: Any, records: Any) -> Iterator[RawBatch]:
    """The batches of one fetch response (kafka-python ``MemoryRecords``), whole; control
    batches skipped as kafka-python skips them. Keeps the ``PartitionRecords`` bookkeeping
    (next fetch offset, counts) that kafka-python's own generator keeps."""
    buffer = records._buffer
    pos, size = 0, len(buffer)
    while pos + _LOG_OVERHEAD + 5 <= size:  # up to the magic byte
        base_offset, length = _OFFSET_LENGTH.unpack_from(buffer, pos)
        if length < _MIN_LENGTH:  # as kafka-python's MemoryRecords raises (it cannot go on)
            raise CorruptRecordError(
                f"record batch at offset {base_offset} of {part.topic_partition} declares "
                f"{length} bytes, less than the smallest record"
            )
        end = pos + _LOG_OVERHEAD + length
        if end > size:
            break  # a partial batch at the end of the response: fetched again next time
        if buffer[pos + 16] < 2 or end - pos < _HEADER_SIZE:
            # The old formats (one message, or a compressed set) or a batch too short to be
            # one: handed over as it is, parsed (or found damaged) by kafka-python's classes.
            batch = RawBatch(bytes(buffer[pos:end]), base_offset, base_offset, 1)
            part.next_fetch_offset = base_offset + 1
        else:
            header = _BATCH_HEADER.unpack_from(buffer, pos)
            last = base_offset + header[6]
            part.next_fetch_offset = last + 1
            part.leader_epoch = header[2]
            if header[5] & _CONTROL:
                pos = end
                continue
            batch = RawBatch(bytes(buffer[pos:end]), base_offset, last, header[12])
        part.records_read += batch.count
        part.bytes_read += end - pos
        pos = end
        yield batch
    part.drain()


# -- the decoding side ---------------------------------------------------------------------


def parse_batches(
    data: bytes, floor: int, *, check_crcs: bool = True
) -> Iterator[Fields | DamagedBatch]:
    """The records of concatenated batches at offsets from ``floor`` on, in order; a
    :class:`DamagedBatch` in place of a batch that fails its CRC or does not parse."""
    pos, size = 0, len(data)
    while pos + _LOG_OVERHEAD <= size:
        base_offset, length = _OFFSET_LENGTH.unpack_from(data, pos)
        end = pos + _LOG_OVERHEAD + length
        if length < _MIN_LENGTH or end > size:  # _split hands over whole batches only
            raise ValueError(f"record batch at offset {base_offset} is not whole ({length} bytes)")
        raw = data[pos:end]
        pos = end
        if len(raw) < _HEADER_SIZE or raw[16] < 2 or raw[22] & _COMPRESSION:
            yield from _parse_by_kafka_python(raw, base_offset, floor, check_crcs)
            continue
        header = _BATCH_HEADER.unpack_from(raw)
        last_offset = base_offset + header[6]
        if last_offset < floor:
            continue
        if check_crcs and calc_crc32c(memoryview(raw)[_CRC_FROM:]) != header[4]:
            yield _damaged("failed its CRC check", base_offset, last_offset, floor)
            continue
        try:
            fields = _parse_v2(raw, header)
        except (IndexError, ValueError) as exc:
            yield _damaged(f"does not parse ({exc})", base_offset, last_offset, floor)
            continue
        for record in fields:
            if record[0] >= floor:
                yield record


def _parse_by_kafka_python(
    raw: bytes, base_offset: int, floor: int, check_crcs: bool
) -> Iterator[Fields | DamagedBatch]:
    last_offset = base_offset
    try:
        batch = MemoryRecords(raw).next_batch()
        if batch is None:
            raise ValueError("truncated record batch")
        last_offset = getattr(batch, "last_offset", base_offset)
        if check_crcs and not batch.validate_crc():
            raise ValueError("record batch failed its CRC check")
        fields = []
        for record in batch:
            if check_crcs and not record.validate_crc():
                raise ValueError(f"record at offset {record.offset} failed its CRC check")
            fields.append(
                (record.offset, record.timestamp, record.key, record.value, _text(record.headers))
            )
            last_offset = max(last_offset, record.offset)
    except Exception as exc:  # kafka-python raises its own errors for damaged batches
        if last_offset >= floor:
            yield _damaged(f"does not parse ({exc})", base_offset, last_offset, floor)
        return
    for record in fields:
        if record[0] >= floor:
            yield record


def _text(headers: list[tuple[str, bytes | None]]) -> dict[str, str] | list[tuple[str, bytes | None]]:
    """kafka-python's header list as :data:`Fields` has it."""
    try:
        return {name: value.decode("utf-8") for name, value in headers}  # type: ignore[union-attr]
    except (AttributeError, UnicodeDecodeError):  # a value missing or not UTF-8
        return list(headers)


def _damaged(problem: str, base_offset: int, last_offset: int, floor: int) -> DamagedBatch:
    """The offsets from ``floor`` on of a damaged batch (at most _MAX_DAMAGED_OFFSETS: a
    larger range means the header itself is damaged, and the rest shows as a gap)."""
    first = max(base_offset, floor)
    last = min(last_offset, first + _MAX_DAMAGED_OFFSETS - 1)
    if last < last_offset:
        log.error(
            "damaged record batch declares offsets %d-%d; keeping %d-%d",
            base_offset, last_offset, first, last,
        )
    return DamagedBatch(f"record batch at offsets {base_offset}-{last_offset} {problem}", first, last)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint (the general case; one and two bytes are decoded inline below)."""
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint out of the int64 range")


_names: dict[bytes, str] = {}


def _header_list(raw: bytes, p: int, count: int) -> tuple[list[tuple[str, bytes | None]], int]:
    """A record's headers as kafka-python lists them (values as bytes or None), and the
    position after them."""
    out: list[tuple[str, bytes | None]] = []
    for _ in range(count):
        n, p = _varint(raw, p)
        if n < 0:
            raise ValueError(f"negative header name size {n}")
        name = raw[p : p + n].decode("utf-8")
        p += n
        n, p = _varint(raw, p)
        if n >= 0:
            out.append((name, raw[p : p + n]))
            p += n
        else:
            out.append((name, None))
    return out, p


def _parse_v2(raw: bytes, header: tuple[Any, ...]) -> list[Fields]:
    """Records of an uncompressed v2 batch, as kafka-python's ``DefaultRecordBatch`` reads
    them (same offsets, timestamps, keys, values and headers, the headers decoded as
    :data:`Fields` says), in less than half its time.

    The varints are decoded inline for one and two bytes (lengths under 8192), which is
    nearly all of them; ``_varint`` takes the rest. The inline blocks repeat on purpose (and
    ``duplicates`` lists them): a function call per varint, six or more a record, cost about
    a third of this loop's time, and this loop runs for every record the collector stores.
    """
    base_offset = header[0]
    log_append = header[5] & _LOG_APPEND_TIME
    first_ts, max_ts, count = header[7], header[8], header[12]
    names = _names
    varint = _varint
    out: list[Fields] = []
    append = out.append
    p = _HEADER_SIZE
    for _ in range(count):
        b = raw[p]
        if b < 0x80:
            length = (b >> 1) ^ -(b & 1)
            p += 1
        elif raw[p + 1] < 0x80:
            v = (b & 0x7F) | (raw[p + 1] << 7)
            length = (v >> 1) ^ -(v & 1)
            p += 2
        else:
            length, p = varint(raw, p)
        start = p
        p = varint(raw, p)[1]  # the record's attributes: unused
        b = raw[p]
        if b < 0x80:
            ts_delta = (b >> 1) ^ -(b & 1)
            p += 1
        else:
            ts_delta, p = varint(raw, p)
        b = raw[p]
        if b < 0x80:
            offset_delta = (b >> 1) ^ -(b & 1)
            p += 1
        else:
            offset_delta, p = varint(raw, p)
        b = raw[p]
        if b < 0x80:
            n = (b >> 1) ^ -(b & 1)
            p += 1
        elif raw[p + 1] < 0x80:
            v = (b & 0x7F) | (raw[p + 1] << 7)
            n = (v >> 1) ^ -(v & 1)
            p += 2
        else:
            n, p = varint(raw, p)
        if n >= 0:
            key: bytes | None = raw[p : p + n]
            p += n
        else:
            key = None
        b = raw[p]
        if b < 0x80:
            n = (b >> 1) ^ -(b & 1)
            p += 1
        elif raw[p + 1] < 0x80:
            v = (b & 0x7F) | (raw[p + 1] << 7)
            n = (v >> 1) ^ -(v & 1)
            p += 2
        else:
            n, p = varint(raw, p)
        if n >= 0:
            value: bytes | None = raw[p : p + n]
            p += n
        else:
            value = None
        headers_count, p = varint(raw, p)
        if headers_count < 0:
            raise ValueError(f"negative header count {headers_count}")
        # Decoded to text here, as decoding would next (one pass instead of two); a record
        # with a header value that is missing or not UTF-8 keeps kafka-python's list, and
        # the decoder's full header codec reports what is wrong with it.
        headers: Any = {}
        headers_from = p
        for _h in range(headers_count):
            b = raw[p]
            if b < 0x80:
                n = (b >> 1) ^ -(b & 1)
                p += 1
            else:
                n, p = varint(raw, p)
            if n < 0:
                raise ValueError(f"negative header name size {n}")
            name_bytes = raw[p : p + n]
            p += n
            name = names.get(name_bytes)
            if name is None:
                name = name_bytes.decode("utf-8")
                if len(names) < 4096:
                    names[name_bytes] = name
            b = raw[p]
            if b < 0x80:
                n = (b >> 1) ^ -(b & 1)
                p += 1
            elif raw[p + 1] < 0x80:
                v = (b & 0x7F) | (raw[p + 1] << 7)
                n = (v >> 1) ^ -(v & 1)
                p += 2
            else:
                n, p = varint(raw, p)
            if n < 0:
                headers = None
                break
            try:
                headers[name] = raw[p : p + n].decode("utf-8")
            except UnicodeDecodeError:
                headers = None
                break
            p += n
        if headers is None:
            headers, p = _header_list(raw, headers_from, headers_count)
        if p - start != length:
            raise ValueError(f"record of {length} bytes read as {p - start}")
        append((
            base_offset + offset_delta,
            max_ts if log_append else first_ts + ts_delta,
            key,
            value,
            headers,
        ))
    if p != len(raw):
        raise ValueError(f"{len(raw) - p} bytes after the last record")
    return out
