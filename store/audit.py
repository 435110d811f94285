"""The audit trail: a per-partition hash chain over stored rows, and its verification.

The rows of a partition are stored in *links*: the rows of one poll (or one salvage insert),
consecutive in offset order. The last row of a link carries
``chain_hash = sha256(previous link's chain_hash || the link's row digests)``; the other rows
carry none (an empty ``FixedString``). The genesis value is empty, and a link of one row is
``sha256(previous || digest)``, the per-row chain of rows stored before links existed. The
row digest covers the columns in :data:`AUDIT_FIELDS` exactly as stored (and
``headers_elided`` when set), so the chain is recomputable from the table alone:

- a row edited afterwards no longer matches its link's chain hash (the link's offsets are
  reported: a link hash cannot tell which of its rows changed);
- a row deleted afterwards leaves an offset gap *and* breaks its link;
- an offset the collector never received (lost in Kafka) leaves a gap with the chain intact;
- rows deleted from the end of a partition show against the ``progress`` table.

One hash per link instead of per row saves ~32 B per stored message (a SHA-256 does not
compress), about a fifth of the table.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sagascope.store.base import Store
from sagascope.store.timetext import stored_ms

#: Columns covered by the row digest, in digest order. Fixed: new columns do not join it,
#: so rows stored before a migration still verify.
AUDIT_FIELDS: tuple[str, ...] = (
    "topic", "partition", "offset", "kafka_time", "event_time", "ingest_time", "kafka_key",
    "trace_id", "span_id", "saga_id", "saga_type", "message_id", "causation_id", "kind",
    "type", "source", "step", "saga_status", "compensates", "headers", "payload",
    "payload_size", "payload_sha256", "payload_truncated", "correlation", "parse_error",
)
_TIME_FIELDS = frozenset({"kafka_time", "event_time", "ingest_time"})
GENESIS = ""

_stdlib_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def _canonical_stdlib(values: list[Any]) -> bytes:
    return _stdlib_dumps(values).encode("utf-8")


try:  # same bytes as the stdlib encoder above (compact, sorted keys, UTF-8), much faster
    import orjson

    def _canonical(values: list[Any]) -> bytes:
        try:
            return orjson.dumps(values, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return _canonical_stdlib(values)

except ImportError:  # pragma: no cover - orjson comes with the collector extra
    _canonical = _canonical_stdlib


_audited = operator.itemgetter(*AUDIT_FIELDS)
_TIME_INDEXES = tuple(i for i, name in enumerate(AUDIT_FIELDS) if name in _TIME_FIELDS)


def row_digest(row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the audited columns of a row, as written or as read back."""
    values = list(_audited(row))
    for i in _TIME_INDEXES:
        if type(values[i]) is not str:  # read back as datetime: the text it was written as
            values[i] = stored_ms(values[i])
    elided = row.get("headers_elided")
    if elided:  # rows without elided headers digest as they did before the column existed
        values.append(int(elided))
    return hashlib.sha256(_canonical(values)).hexdigest()


def link_hash(previous: str, digests: Iterable[str]) -> str:
    """The chain hash sealing a link: SHA-256 of the previous link's chain hash followed by
    the row digests (hex) of the link's rows, in offset order.

    The one computation of a link, for every decode path and for :func:`verify`. Only the
    concatenation of the digests counts: a caller holding them joined already (the decoding
    processes send them so) passes that one string, as ``(joined,)``.
    """
    h = hashlib.sha256(previous.encode("ascii"))
    for digest in digests:
        h.update(digest.encode("ascii"))
    return h.hexdigest()


def open_link(rows: list[dict[str, Any]]) -> list[str]:
    """The row digests of a link's rows (one partition, offset order), each row given an
    empty ``chain_hash`` as its last column, where the seal goes."""
    digests = []
    for row in rows:
        digests.append(row_digest(row))
        row["chain_hash"] = ""
    return digests


def sealed(chain_hash: Any) -> bool:
    """Whether a stored ``chain_hash`` ends a link (others read back empty or as NUL bytes)."""
    if isinstance(chain_hash, bytes):
        chain_hash = chain_hash.decode("ascii", errors="replace")
    return bool(chain_hash) and bool(chain_hash.strip("\x00"))


def seal(rows: list[dict[str, Any]], previous: str) -> str:
    """Make ``rows`` (one partition, offset order) one link after ``previous``; its hash."""
    if not rows:
        return previous
    head = link_hash(previous, open_link(rows))
    rows[-1]["chain_hash"] = head
    return head


@dataclass
class PartitionAudit:
    """What verification found in one partition; offsets are inclusive ranges."""

    topic: str
    partition: int
    rows: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    #: Offsets never stored (chain intact across the gap): lost before storage.
    lost: list[tuple[int, int]] = field(default_factory=list)
    #: Offsets stored and later deleted (gap where the chain breaks, or a truncated tail).
    deleted: list[tuple[int, int]] = field(default_factory=list)
    #: Links whose rows no longer match their chain hash: (first, last) offset of each.
    edited: list[tuple[int, int]] = field(default_factory=list)
    #: Offsets stored more than once.
    duplicates: list[int] = field(default_factory=list)
    #: Offsets before the first one collected (before ``collector.start_from``, or gone from
    #: Kafka by retention before collection): never stored, and no fault of the trail.
    never_stored: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return not (self.lost or self.deleted or self.edited or self.duplicates)

    def problems(self) -> list[str]:
        out = [
            f"lost offsets {a}-{b} (never stored: not in Kafka when collected, e.g. removed "
            "by retention meanwhile)"
            for a, b in self.lost
        ]
        out += [f"deleted offsets {a}-{b} (stored, then removed)" for a, b in self.deleted]
        out += [
            f"edited row at offset {a}" if a == b else f"edited row(s) among offsets {a}-{b}"
            for a, b in self.edited
        ]
        out += [f"duplicate offset {o}" for o in self.duplicates]
        return out

    def notes(self) -> list[str]:
        """What is worth knowing but no fault of the trail."""
        if self.never_stored is None:
            return []
        a, b = self.never_stored
        return [
            f"offsets {a}-{b} never stored (before the first offset collected: before "
            "collector.start_from, or gone from Kafka by retention)"
        ]


@dataclass
class AuditReport:
    partitions: list[PartitionAudit]

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.partitions)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)


_CHUNK_ROWS = 20000


def verify_partition(
    store: Store,
    topic: str,
    partition: int,
    stored_until: int | None = None,
    start_offset: int | None = None,
) -> PartitionAudit:
    """Walk one partition in offset order, checking contiguity and the hash chain.

    Args:
        stored_until: next offset the collector reported as stored (``progress``), if known;
            rows missing below it at the end of the partition were deleted.
        start_offset: first offset the collector reported collecting (``progress``), if
            known; offsets below it were never stored, rows missing from it on were deleted.
    """
    audit = PartitionAudit(topic, partition)
    where = "topic = {topic:String} AND partition = {partition:UInt32}"
    key = {"topic": topic, "partition": partition}
    audit.duplicates = [
        int(o)
        for (o,) in store.query(
            f"SELECT offset FROM messages WHERE {where} GROUP BY offset HAVING count() > 1 "
            "ORDER BY offset",
            key,
        ).rows
    ]
    columns = ", ".join(f"`{name}`" for name in (*AUDIT_FIELDS, "headers_elided", "chain_hash"))
    previous_offset: int | None = None
    previous_chain = GENESIS
    # The open link: its row digests, first offset, and the offset gaps before and inside it.
    digests: list[str] = []
    link_first: int | None = None
    link_after: int | None = None  # offset of the row before the link (None: it starts)
    gaps: list[tuple[int, int]] = []
    start = 0
    while True:
        rows = store.query(
            f"SELECT {columns} FROM messages WHERE {where} AND offset >= {{start:UInt64}} "
            "ORDER BY offset, chain_hash LIMIT 1 BY offset LIMIT {limit:UInt64}",
            {**key, "start": start, "limit": _CHUNK_ROWS},
        ).dicts()
        for row in rows:
            offset = int(row["offset"])
            audit.rows += 1
            if audit.first_offset is None:
                audit.first_offset = offset
            if link_first is None:
                link_first, link_after = offset, previous_offset
            if previous_offset is not None and offset > previous_offset + 1:
                gaps.append((previous_offset + 1, offset - 1))
            digests.append(row_digest(row))
            previous_offset = offset
            if not sealed(row["chain_hash"]):
                continue
            if row["chain_hash"] == link_hash(previous_chain, digests):
                audit.lost.extend(gaps)
            elif gaps:
                audit.deleted.extend(gaps)
            elif link_after is None and link_first > (start_offset or 0):
                # The first link no longer starts the chain: rows before it were removed.
                audit.deleted.append((start_offset or 0, link_first - 1))
            else:
                audit.edited.append((link_first, offset))
            previous_chain = row["chain_hash"]
            digests, link_first, gaps = [], None, []
        if len(rows) < _CHUNK_ROWS or previous_offset is None:
            break
        start = previous_offset + 1
    if link_first is not None and previous_offset is not None:
        # Rows after the last chain hash cannot be verified: their seal was removed or forged.
        audit.deleted.extend(gaps)
        audit.edited.append((link_first, previous_offset))
    audit.last_offset = previous_offset
    collected_from = _collected_from(audit, start_offset)
    if collected_from > 0:
        audit.never_stored = (0, collected_from - 1)
    if stored_until is not None:
        next_expected = collected_from if previous_offset is None else previous_offset + 1
        if stored_until > next_expected:
            audit.deleted.append((next_expected, stored_until - 1))
    return audit


def _collected_from(audit: PartitionAudit, start_offset: int | None) -> int:
    """Where collection of the partition began: offsets before it were never stored.

    The collector's own record (``progress``) says it when present; else, when the first
    stored link chains from the genesis (no rows were removed before it), its first offset.
    """
    if start_offset is not None:
        return start_offset
    removed_before = any(a == 0 for a, _ in audit.deleted)
    if audit.first_offset is None or removed_before:
        return 0
    return audit.first_offset


def verify(store: Store, topic_pattern: str = "") -> AuditReport:
    """Verify every partition in ``messages`` (topics matching ``topic_pattern``, a regex)."""
    params: dict[str, Any] = {"pattern": topic_pattern or ".*"}
    partitions = store.query(
        "SELECT topic, partition FROM messages WHERE match(topic, {pattern:String}) "
        "GROUP BY topic, partition ORDER BY topic, partition",
        params,
    ).rows
    progress_rows = store.query(
        "SELECT topic, partition, max(stored_offset), min(start_offset) FROM progress FINAL "
        "WHERE match(topic, {pattern:String}) GROUP BY topic, partition",
        params,
    ).rows
    progress = {(row[0], int(row[1])): int(row[2]) for row in progress_rows}
    starts = {(row[0], int(row[1])): int(row[3]) for row in progress_rows}
    # The telemetry topic is stored in `spans`, outside the chain: leave it out.
    span_topics = set(store.query(
        "SELECT DISTINCT topic FROM spans WHERE match(topic, {pattern:String})", params
    ).column("topic"))
    progress = {tp: until for tp, until in progress.items() if tp[0] not in span_topics}
    known = {(t, int(p)) for t, p in partitions}
    # A partition whose rows were all deleted is known only from progress.
    known |= {tp for tp, until in progress.items() if until > starts[tp]}
    return AuditReport([
        verify_partition(store, t, p, progress.get((t, p)), starts.get((t, p)))
        for t, p in sorted(known)
    ])
