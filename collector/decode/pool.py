"""Decoding in child processes, beside the collector thread's polling and the store's inserts.

Parsing record batches and decoding their records (headers, payload, rules, row digest,
encoding for the insert) is pure Python and would hold the collector process's one GIL.
:class:`DecodeWorker` ships each partition's share of a poll to a child interpreter as
``marshal`` bytes: whole record batches as fetched (see ``record_batches``) or, for clients
that parse records themselves, each record's fields. The child parses the batches (checking
their CRCs), decodes the records, and answers with the rows already encoded for the insert and
their digests; the collector thread only seals the link (one hash) and appends the bytes to
the batch.

Results come back in submission order. If the child dies, the chunks it had not answered are
decoded in the collector thread (nothing is lost or reordered) and a new child is started for
later chunks; after repeated deaths decoding stays in-process.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from sagascope.collector.assignment import Partition, PartitionState
from sagascope.collector.batch import Batch, EncodedChunk, account, decode_link
from sagascope.collector.decode.correlate import Correlator
from sagascope.collector.decode.redact import Redactor
from sagascope.collector.decode.rows import DecodeContext
from sagascope.collector.record_batches import (
    DamagedBatch,
    ParsedRecords,
    RawBatch,
    parse_batches,
    record_count,
)
from sagascope.settings import CorrelationRule, RedactionRule
from sagascope.store.audit import link_hash, open_link
from sagascope.store.base import encode_rows

log = logging.getLogger(__name__)

#: What a decoding process needs, as settings (picklable; compiled in the child): the
#: correlation rules, the redaction rules and the payload cap.
DecodeRules = tuple[tuple[CorrelationRule, ...], tuple[RedactionRule, ...], int]

#: Longest wait for a child's answer (a healthy one answers a 20,000-record chunk in about
#: a second) before it is taken for hung, killed, and its chunks decoded in-process.
_ANSWER_TIMEOUT_S = 30.0
#: Child deaths after which decoding stays in the collector thread.
_MAX_RESTARTS = 3
#: Records in one poll that make a backlog, for which the decoding processes start: well
#: beyond what a pause of a few seconds piles up at a steady few hundred records a second
#: (an insert slowed by a busy machine), which the calling thread decodes in milliseconds;
#: started, the processes stay and hold ~40 MB each.
BACKLOG_RECORDS = 5000
#: What the child interpreter runs: stdin and stdout are the request and answer pipes.
_CHILD = (
    # Ctrl-C in a terminal reaches the whole process group: the collector decides when the
    # child stops (by closing its stdin), so that what it was sent is still answered.
    "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "out = sys.stdout.buffer; sys.stdout = sys.stderr; "
    "from sagascope.collector.decode.pool import serve; serve(sys.stdin.buffer, out)"
)
#: The chain hash is the last key of every encoded row: the seal goes in its empty value.
_OPEN_SEAL = b'"chain_hash":""}\n'


#: What a decoding process is asked: (topic, partition, ingest ms, floor, raw, payload).
#: ``payload`` is record batches as fetched (``raw``, see ``record_batches``) or each record's
#: (offset, timestamp, key, value, headers); offsets below ``floor`` are skipped.
Request = tuple[str, int, int, int, bool, Any]
#: Its answer: (JSONEachRow bytes of the rows, their hex digests concatenated, rows with a
#: parse error, rows, first offset, next offset, latest Kafka time or None). The digests are
#: what ``audit.link_hash`` hashes after the previous link's hash, so sealing the link costs
#: the collector thread one SHA-256 call.
Answer = tuple[bytes, str, int, int, int, int, "int | None"]


@dataclass
class _Chunk:
    """Records of one partition submitted for decoding, not yet applied to the batch."""

    state: PartitionState
    request: Request
    records: int


def decode_chunk(ctx: DecodeContext, request: Request) -> Answer:
    """Decode one request (in the child, or in-process when there is none)."""
    topic, partition, ingest_ms, floor, raw, payload = request
    records: Any = parse_batches(payload, floor) if raw else payload
    link = decode_link(topic, partition, records, floor, ctx, ingest_ms, spans=False)
    digests = "".join(open_link(link.rows))
    return (
        encode_rows(link.rows), digests, link.errors, len(link.rows), link.first,
        link.next_offset, link.kafka_ms,
    )


_FRAME = struct.Struct("<I")


def _read_frame(stream: Any) -> bytes | None:
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(header)
    data = stream.read(size)
    return data if len(data) == size else None


def _write_frame(stream: Any, data: bytes) -> None:
    stream.write(_FRAME.pack(len(data)))
    stream.write(data)
    stream.flush()


def context(rules: DecodeRules) -> DecodeContext:
    correlation, redaction, cap = rules
    return DecodeContext(Correlator(correlation), Redactor(redaction), cap)


def serve(requests: Any, results: Any) -> None:
    """The child: the first frame is the pickled DecodeRules, then each frame a chunk to
    decode; until the collector closes its end (or dies)."""
    first = _read_frame(requests)
    if first is None:
        return
    ctx = context(pickle.loads(first))
    while True:
        request = _read_frame(requests)
        if request is None:
            return
        _write_frame(results, marshal.dumps(decode_chunk(ctx, marshal.loads(request))))


class DecodeWorker:
    """The collector thread's side of the decoding child process.

    ``submit`` queues a partition's records; ``drain`` applies the answers, in order, to the
    batch (``wait=True``: every submitted chunk). Use from one thread at a time (the
    collector holds its lock around both).
    """

    def __init__(self, rules: DecodeRules, name: str = "sagascope-decoder") -> None:
        self._rules = rules
        self._ctx = context(rules)
        self._name = name
        self._pending: deque[_Chunk] = deque()
        self._answers: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._process: Any = None
        #: Frames for the child, written by a sender thread (a request is larger than the
        #: pipe, and writing it from the collector thread would wait for the child).
        self._outbox: queue.SimpleQueue[bytes | None] | None = None
        self._restarts = 0
        self.pending_records = 0
        #: Once started (by start() or a backlog), the child is kept, and restarted if lost.
        self._wanted = False

    # -- the child -----------------------------------------------------------------------

    def start(self) -> bool:
        """Start the child process (if not running); False when decoding stays in-process."""
        self._wanted = True
        if self._process is not None:
            return True
        if self._restarts > _MAX_RESTARTS:
            return False
        # A plain child interpreter, not multiprocessing: spawn would re-import the
        # embedding application's __main__ module in the child.
        process = None
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _CHILD],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # Buffered: read(n) and write() then move whole frames, never part of one.
                bufsize=-1,
                # The same import path as this process, so the child decodes with this code.
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
            _write_frame(process.stdin, pickle.dumps(self._rules))
        except Exception:
            log.exception("cannot start the decoding process; decoding in-process")
            if process is not None:
                process.kill()
                process.wait()
            self._restarts = _MAX_RESTARTS + 1
            return False
        answers: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._answers = answers
        threading.Thread(
            target=self._receive, args=(process.stdout, answers), name=f"{self._name}-results",
            daemon=True,
        ).start()
        outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        threading.Thread(
            target=self._send, args=(process.stdin, outbox), name=f"{self._name}-requests",
            daemon=True,
        ).start()
        self._process, self._outbox = process, outbox
        return True

    @staticmethod
    def _send(requests: Any, outbox: queue.SimpleQueue[bytes | None]) -> None:
        try:
            while True:
                frame = outbox.get()
                if frame is None:
                    return
                _write_frame(requests, frame)
        except (OSError, ValueError):
            return  # the child is gone: the receiver sees the end of its answers
        finally:
            with contextlib.suppress(OSError):
                requests.close()

    @staticmethod
    def _receive(results: Any, answers: queue.SimpleQueue[bytes | None]) -> None:
        # Reading answers as they come keeps the child from blocking on a full pipe while
        # the collector thread is blocked sending it the next request.
        try:
            while True:
                answer = _read_frame(results)
                answers.put(answer)
                if answer is None:
                    return
        except (OSError, ValueError):
            answers.put(None)
        finally:
            results.close()

    def _lost_child(self) -> None:
        """The child died: decode what it had not answered here, in order."""
        process, self._process = self._process, None
        self._restarts += 1
        if self._outbox is not None:
            self._outbox.put(None)
            self._outbox = None
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()
            process.wait()
        log.error(
            "decoding process exited (code %s); decoding %d pending record(s) in-process",
            None if process is None else process.returncode, self.pending_records,
        )

    def close(self) -> None:
        if self._outbox is not None:
            self._outbox.put(None)  # the sender closes the child's stdin: it exits
            self._outbox = None
        process, self._process = self._process, None
        if process is not None:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # -- submit and apply ----------------------------------------------------------------

    def submit(self, state: PartitionState, items: list[Any], batch: Batch) -> None:
        """Queue a partition's records or raw batches (already-stored or already-queued
        offsets skipped)."""
        floor = state.submitted_next if state.submitted_next is not None else state.buffered_next
        if floor is not None and items and items[-1].offset < floor:
            return  # a replayed fetch: nothing new (a raw batch's offset is its last)
        if not items:
            return
        state.submitted_next = items[-1].offset + 1
        ingest_ms = time.time_ns() // 1_000_000
        lowest = -1 if floor is None else floor
        kind = type(items[0])
        if kind is RawBatch:
            payload = b"".join([item.data for item in items])  # one item: no copy
            request: Request = (state.topic, state.partition, ingest_ms, lowest, True, payload)
        elif kind is ParsedRecords:  # the client's tuples already: sent as they are
            fields = items[0].fields if len(items) == 1 else [f for i in items for f in i.fields]
            request = (state.topic, state.partition, ingest_ms, lowest, False, fields)
        else:
            request = (state.topic, state.partition, ingest_ms, lowest, False, _fields(items))
        chunk = _Chunk(state, request, record_count(items))
        # A batch the client found damaged (it ends its partition's list) is rare and not
        # marshallable: it is decoded here, in order.
        damaged = kind is ParsedRecords and type(items[-1].fields[-1]) is DamagedBatch
        # Until start() was called, chunks are decoded here (see DecodePool.started).
        if not damaged and self._wanted and self.start() and self._outbox is not None:
            try:
                frame = marshal.dumps(request)
            except ValueError:  # not marshallable (not from kafka-python): decode it here
                log.warning("records of %s[%d] not marshallable", state.topic, state.partition)
            else:
                self._outbox.put(frame)
                self._pending.append(chunk)
                self.pending_records += chunk.records
                return
        # No child: decode now, after whatever is still pending.
        self.drain(batch, wait=True)
        self._apply(batch, chunk, decode_chunk(self._ctx, request))

    def drain(self, batch: Batch, *, wait: bool, keep: int = 0) -> None:
        """Apply answered chunks to ``batch``, in order; with ``wait``, waiting for answers
        until at most ``keep`` records are left pending (all when 0)."""
        while self._pending:
            if self._process is None:
                answer = None
            else:
                block = wait and self.pending_records > keep
                try:
                    answer = self._answers.get(block=block, timeout=_ANSWER_TIMEOUT_S if block else None)
                except queue.Empty:
                    # Not waiting: give up on the child only when its oldest chunk is overdue
                    # (at low traffic the loop never waits, and a hung child would hold its
                    # partitions back for good).
                    overdue_ms = time.time_ns() // 1_000_000 - self._pending[0].request[2]
                    if not block and overdue_ms < _ANSWER_TIMEOUT_S * 1000:
                        return
                    log.error("decoding process silent for %.0f s; replacing it", _ANSWER_TIMEOUT_S)
                    answer = None
            if answer is None and self._process is not None:
                self._lost_child()
            chunk = self._pending.popleft()
            self.pending_records -= chunk.records
            if answer is None:
                self._apply(batch, chunk, decode_chunk(self._ctx, chunk.request))
            else:
                self._apply(batch, chunk, marshal.loads(answer))

    @staticmethod
    def _apply(batch: Batch, chunk: _Chunk, answer: Answer) -> None:
        """Seal the chunk's link onto its partition's chain and add it to the batch."""
        data, digests, errors, rows, first, next_offset, kafka_ms = answer
        if not rows:
            return  # every record was below the floor
        state = chunk.state
        head = link_hash(state.buffered_chain, (digests,))  # the digests come concatenated
        # encode_rows ends every row so, with orjson or the stdlib (compact separators both).
        if not data.endswith(_OPEN_SEAL):
            raise RuntimeError("encoded rows do not end with an empty chain_hash")
        data = data[: -len(_OPEN_SEAL)] + b'"chain_hash":"' + head.encode("ascii") + b'"}\n'
        batch.encoded.append(EncodedChunk(state.topic, state.partition, data, rows))
        account(
            batch, state, first=first, next_offset=next_offset, head=head,
            kafka_ms=state.buffered_kafka_ms if kafka_ms is None else kafka_ms,
            rows=rows, errors=errors,
        )


def _fields(records: list[Any]) -> list[tuple[Any, ...]]:
    return [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in records]


class DecodePool:
    """Several decoding processes; each partition always goes to the same one (its rows stay
    in order), so the work spreads over the cores kafka-python and the store leave idle."""

    def __init__(self, rules: DecodeRules, workers: int, name: str = "sagascope-decoder") -> None:
        self._workers = [DecodeWorker(rules, name=f"{name}-{i}") for i in range(max(1, workers))]
        #: partition -> its worker, dealt round-robin as partitions first appear.
        self._owner: dict[Partition, DecodeWorker] = {}
        #: Whether start() was called: the collector starts the processes at the first poll
        #: that brings a backlog, and saves their memory while traffic is light.
        self.started = False

    @property
    def pending_records(self) -> int:
        return sum(w.pending_records for w in self._workers)

    def start(self) -> bool:
        """Start the processes (until then chunks are decoded in the calling thread)."""
        self.started = True
        return all([w.start() for w in self._workers])

    def start_on_backlog(self, fetched: int, batch_half: int) -> None:
        """Start the processes when one poll ``fetched`` a backlog (BACKLOG_RECORDS, or half a
        batch if less). Below that, at a few hundred records a second, decoding costs the
        loop a few milliseconds a second and the processes' memory (~35 MB each) is saved;
        once started they stay."""
        if fetched >= min(BACKLOG_RECORDS, batch_half):
            log.info("%d records in one poll: starting %d decoding process(es)",
                     fetched, len(self._workers))
            self.start()

    def close(self) -> None:
        for worker in self._workers:
            worker.close()

    def submit(self, state: PartitionState, records: list[Any], batch: Batch) -> None:
        key = state.key
        worker = self._owner.get(key)
        if worker is None:
            worker = self._owner[key] = self._workers[len(self._owner) % len(self._workers)]
        worker.submit(state, records, batch)

    def drain(self, batch: Batch, *, wait: bool, keep: int = 0) -> None:
        """Apply the answers so far; with ``wait``, wait until at most ``keep`` records are
        pending in all (all answered when 0)."""
        share = keep // len(self._workers)
        for worker in self._workers:
            worker.drain(batch, wait=wait, keep=share)
