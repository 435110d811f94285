"""Replay an event log (CSV or XES, plain or gzipped) into Kafka as traced saga messages.

Each case becomes a saga (``ce_sagatype`` = the log's name, ``ce_sagaid`` = the case id), each
event a message carrying the contract headers with its original time in ``ce_time``; an event
is caused by the previous event of its case, and the last event of a case is marked
``ce_sagastatus=completed`` unless the log carries a status column of its own. So history can
be loaded and inspected like live traffic (cycle times come out in the log's own time).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

from sagascope.exceptions import ReplayError
from sagascope.instrumentation import contract as c

log = logging.getLogger(__name__)

#: Column names tried, in order (case-insensitive), when none is given.
CASE_COLUMNS = ("case:concept:name", "case id", "case_id", "caseid", "case")
ACTIVITY_COLUMNS = ("concept:name", "activity", "activity name", "event", "task")
TIME_COLUMNS = (
    "time:timestamp", "complete timestamp", "timestamp", "time", "end timestamp",
    "start timestamp",
)
RESOURCE_COLUMNS = ("org:resource", "resource")
STATUS_COLUMNS = ("ce_sagastatus", "sagastatus", "saga_status", "saga:status")


@dataclass(frozen=True)
class LogEvent:
    case_id: str
    activity: str
    timestamp: datetime
    resource: str = ""
    status: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EventLog:
    """Events ordered by time (ties keep the log's order), with the log's name."""

    name: str
    events: list[LogEvent]

    @property
    def cases(self) -> int:
        return len({e.case_id for e in self.events})


@dataclass(frozen=True)
class ReplayStats:
    topic: str
    cases: int
    events: int
    elapsed_s: float


def parse_timestamp(value: str) -> datetime:
    """ISO 8601 / RFC 3339 and the common ``2012/10/09 14:50:17`` form; naive means UTC."""
    text = value.strip()
    if re.match(r"^\d{4}/\d{2}/\d{2}", text):
        text = text.replace("/", "-", 2)
    try:
        return c.parse_time(text)
    except c.MalformedHeader:
        pass
    for fmt in ("%d-%m-%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%d-%m-%Y %H:%M", "%d/%m/%Y %H:%M"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"not a timestamp: {value[:60]!r}")


def _open_text(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    if gz:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _open_binary(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    return cast(IO[bytes], gzip.open(path, "rb") if gz else path.open("rb"))


def log_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".xes", ".csv", ".xml"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or "event-log"


def _pick(fieldnames: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str,
          *, required: bool = True) -> str | None:
    if wanted:
        if wanted not in fieldnames:
            raise ReplayError(f"{what} column {wanted!r} is not in the log ({', '.join(fieldnames)})")
        return wanted
    lowered = {f.strip().lower(): f for f in fieldnames}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    if required:
        raise ReplayError(
            f"cannot find the {what} column among {', '.join(fieldnames)}; name it with the "
            f"{what} column option"
        )
    return None


def read_csv(
    path: Path,
    *,
    case_column: str | None = None,
    activity_column: str | None = None,
    time_column: str | None = None,
    delimiter: str | None = None,
) -> list[LogEvent]:
    with _open_text(path) as fh:
        sample = fh.read(65536)
        fh.seek(0)
        if delimiter is None:
            try:
                delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
            except csv.Error:
                delimiter = ","
        reader = csv.DictReader(fh, delimiter=delimiter)
        fields = list(reader.fieldnames or [])
        case = _pick(fields, case_column, CASE_COLUMNS, "case")
        activity = _pick(fields, activity_column, ACTIVITY_COLUMNS, "activity")
        stamp = _pick(fields, time_column, TIME_COLUMNS, "timestamp")
        resource = _pick(fields, None, RESOURCE_COLUMNS, "resource", required=False)
        status = _pick(fields, None, STATUS_COLUMNS, "status", required=False)
        assert case and activity and stamp
        events = []
        for line, row in enumerate(reader, start=2):
            try:
                when = parse_timestamp(row[stamp] or "")
            except ValueError as exc:
                raise ReplayError(f"{path}:{line}: column {stamp!r}: {exc}") from None
            if not row[case]:
                raise ReplayError(f"{path}:{line}: empty case id in column {case!r}")
            events.append(
                LogEvent(
                    case_id=row[case],
                    activity=row[activity] or "",
                    timestamp=when,
                    resource=(row.get(resource) or "") if resource else "",
                    status=(row.get(status) or "").strip().lower() if status else "",
                    attributes={k: v for k, v in row.items() if k and v not in (None, "")},
                )
            )
    return events


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_xes(
    path: Path,
    *,
    case_column: str | None = None,
    activity_column: str | None = None,
    time_column: str | None = None,
) -> tuple[str | None, list[LogEvent]]:
    """Events of an XES log and the log's own ``concept:name`` (if any)."""
    case_key = case_column or "concept:name"
    activity_key = activity_column or "concept:name"
    time_key = time_column or "time:timestamp"
    events: list[LogEvent] = []
    name: str | None = None
    depth: list[str] = []
    trace_attrs: dict[str, str] = {}
    pending: list[dict[str, str]] = []
    try:
        with _open_binary(path) as fh:
            for action, elem in ET.iterparse(fh, events=("start", "end")):
                tag = _local(elem.tag)
                if action == "start":
                    if tag == "trace":
                        trace_attrs, pending = {}, []
                    elif tag == "event" and depth and depth[-1] == "trace":
                        pending.append({})
                    depth.append(tag)
                    continue
                depth.pop()
                parent = depth[-1] if depth else ""
                if tag == "trace":
                    case_id = trace_attrs.get(case_key, "")
                    if not case_id:
                        raise ReplayError(f"{path}: a trace has no {case_key!r} attribute")
                    events.extend(
                        _xes_event(path, case_id, attrs, activity_key, time_key)
                        for attrs in pending
                    )
                    elem.clear()
                elif "key" in elem.attrib:
                    key, value = elem.get("key", ""), elem.get("value", "")
                    if parent == "event" and depth[-2:-1] == ["trace"]:
                        pending[-1][key] = value
                    elif parent == "trace":
                        trace_attrs[key] = value
                    elif parent == "log" and key == "concept:name":
                        name = value
    except ET.ParseError as exc:
        raise ReplayError(f"{path} is not valid XES: {exc}") from exc
    return name, events


def _xes_event(
    path: Path, case_id: str, attrs: dict[str, str], activity_key: str, time_key: str
) -> LogEvent:
    if time_key not in attrs:
        raise ReplayError(f"{path}: an event of case {case_id!r} has no {time_key!r}")
    try:
        when = parse_timestamp(attrs[time_key])
    except ValueError as exc:
        raise ReplayError(f"{path}: case {case_id!r}: {exc}") from None
    status = next((attrs[k] for k in STATUS_COLUMNS if attrs.get(k)), "")
    return LogEvent(
        case_id=case_id,
        activity=attrs.get(activity_key, ""),
        timestamp=when,
        resource=attrs.get("org:resource", ""),
        status=status.strip().lower(),
        attributes=dict(attrs),
    )


def read_log(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    case_column: str | None = None,
    activity_column: str | None = None,
    time_column: str | None = None,
) -> EventLog:
    """Read a CSV or XES log (gzipped or not); events sorted by time, ties in log order.

    Raises:
        ReplayError: naming the file, line or case and column that is wrong.
    """
    p = Path(path)
    if not p.is_file():
        raise ReplayError(f"event log {p} not found")
    lowered = p.name.lower().removesuffix(".gz")
    own_name: str | None = None
    if lowered.endswith((".xes", ".xml")):
        own_name, events = read_xes(
            p, case_column=case_column, activity_column=activity_column, time_column=time_column
        )
    elif lowered.endswith((".csv", ".txt", ".tsv")):
        events = read_csv(
            p, case_column=case_column, activity_column=activity_column, time_column=time_column
        )
    else:
        raise ReplayError(f"{p}: unknown log format (expected .csv or .xes, optionally .gz)")
    if not events:
        raise ReplayError(f"{p}: the log has no events")
    indexed = sorted(enumerate(events), key=lambda ie: (ie[1].timestamp, ie[0]))
    return EventLog(name or own_name or log_name(p), [e for _, e in indexed])


def _trace_id(log_name: str, case_id: str) -> str:
    return hashlib.sha256(f"{log_name}\x00{case_id}".encode()).hexdigest()[:32]


def build_messages(
    event_log: EventLog, *, with_headers: bool = True
) -> Iterator[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """(key, value, headers) per event, in replay order; ``with_headers=False`` sends none
    (the case id stays the key), as a service that knows nothing of sagascope would."""
    last_index: dict[str, int] = {}
    explicit: set[str] = set()
    for i, e in enumerate(event_log.events):
        last_index[e.case_id] = i
        if e.status:
            explicit.add(e.case_id)
    previous: dict[str, str] = {}
    for i, e in enumerate(event_log.events):
        message_id = c.new_message_id()
        status = e.status
        if not status and e.case_id not in explicit and last_index[e.case_id] == i:
            status = c.STATUS_COMPLETED
        headers = {
            c.TRACEPARENT: c.TraceParent(
                _trace_id(event_log.name, e.case_id), os.urandom(8).hex()
            ).format(),
            c.CE_SPECVERSION: c.SPECVERSION,
            c.CE_ID: message_id,
            c.CE_SOURCE: e.resource or "replay",
            c.CE_TYPE: e.activity,
            c.CE_TIME: c.format_time(e.timestamp),
            c.CE_SAGAID: e.case_id,
            c.CE_SAGATYPE: event_log.name,
            c.CE_KIND: c.KIND_EVENT,
            c.CE_STEP: e.activity,
        }
        if e.case_id in previous:
            headers[c.CE_CAUSATIONID] = previous[e.case_id]
        if status:
            headers[c.CE_SAGASTATUS] = status
        previous[e.case_id] = message_id
        value = json.dumps(e.attributes, ensure_ascii=False, default=str).encode()
        yield (
            e.case_id.encode(),
            value,
            [(k, v.encode()) for k, v in headers.items()] if with_headers else [],
        )


def replay(
    event_log: EventLog,
    bootstrap_servers: str,
    topic: str,
    *,
    speed: float | None = None,
    client_id: str = "sagascope-replay",
    progress: Callable[[int, int], None] | None = None,
    producer: Any = None,
    client_config: Mapping[str, Any] | None = None,
    with_headers: bool = True,
) -> ReplayStats:
    """Send the log's events to ``topic``; with ``speed``, gaps between events shrink by it.

    ``speed=None`` sends as fast as the broker takes them (event times stay in ``ce_time``).
    ``client_config`` adds kafka-python producer arguments (TLS and SASL from
    ``sagascope.connections.kafka_python_config``).
    """
    if speed is not None and speed <= 0:
        raise ReplayError(f"speed must be positive, got {speed}")
    own = producer is None
    if own:
        from kafka import KafkaProducer

        producer = KafkaProducer(**{
            **(client_config or {}), "bootstrap_servers": bootstrap_servers,
            "client_id": client_id, "acks": "all", "linger_ms": 20, "batch_size": 256 * 1024,
        })
    started = time.monotonic()
    total = len(event_log.events)
    first_ts = event_log.events[0].timestamp
    try:
        messages = build_messages(event_log, with_headers=with_headers)
        for n, (key, value, headers) in enumerate(messages, start=1):
            if speed is not None:
                due = (event_log.events[n - 1].timestamp - first_ts).total_seconds() / speed
                wait = due - (time.monotonic() - started)
                if wait > 0:
                    time.sleep(wait)
            producer.send(topic, key=key, value=value, headers=headers)
            if progress is not None and (n % 500 == 0 or n == total):
                progress(n, total)
        producer.flush()
    finally:
        if own:
            producer.close()
    stats = ReplayStats(topic, event_log.cases, total, time.monotonic() - started)
    log.info("replayed %d events of %d cases to %s in %.1f s", total, stats.cases, topic,
             stats.elapsed_s)
    return stats
