"""What each sampled topic carries: every source a rule could read (payload paths, headers,
the key) and the values it holds, record by record."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sagascope.collector.decode.correlate import parse_event_time
from sagascope.collector.discover.sample import SampledRecord

#: Headers no rule should read: trace context belongs to the tracer, not to a saga.
_SKIPPED_HEADERS = frozenset({"traceparent", "tracestate"})
#: Deeper payload paths are rarely ids and cost time on large documents.
_MAX_DEPTH = 5
_INTEGER = re.compile(r"-?\d+")
#: Event times discovery believes: 1990-01-01 to 2100-01-01 (epoch seconds).
_PLAUSIBLE_TIME = (631_152_000, 4_102_444_800)


def pointer_token(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _leaves(node: Any, prefix: str, depth: int) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        if depth >= _MAX_DEPTH:
            return
        for name, value in node.items():
            yield from _leaves(value, f"{prefix}/{pointer_token(str(name))}", depth + 1)
    elif isinstance(node, bool):
        yield prefix, "true" if node else "false"
    elif isinstance(node, (str, int, float)) and prefix:
        text = str(node)
        if text:
            yield prefix, text


def parse_payload(value: bytes | None) -> Any:
    """The JSON document of a payload, or None."""
    if not value:
        return None
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None


def record_sources(record: SampledRecord, document: Any) -> dict[str, str]:
    """Every source of ``record`` (spelled as a rule spells it) and its value."""
    found = dict(_leaves(document, "", 0)) if isinstance(document, dict) else {}
    for name, value in record.headers.items():
        if value and name not in _SKIPPED_HEADERS:
            found[f"header:{name}"] = value
    if record.key:
        found["key"] = record.key_text
    return found


def is_time_value(text: str) -> bool:
    """An epoch (s, ms or µs) or RFC 3339 time in 1990..2100."""
    if len(text) < 9:
        return False
    moment = parse_event_time(text)
    if moment is None:
        return False
    return _PLAUSIBLE_TIME[0] <= moment.timestamp() < _PLAUSIBLE_TIME[1]


@dataclass
class SourceValues:
    """One source of one topic: its value per record ("" where the record lacks it)."""

    spec: str
    values: list[str]

    @property
    def present(self) -> int:
        return sum(1 for v in self.values if v)

    @property
    def coverage(self) -> float:
        return self.present / len(self.values) if self.values else 0.0

    def distinct(self) -> set[str]:
        return {v for v in self.values if v}

    def counts(self) -> Counter[str]:
        return Counter(v for v in self.values if v)

    @property
    def name(self) -> str:
        """The last word of the spec: ``/order/id`` -> ``id``, ``header:x-id`` -> ``x-id``."""
        return re.split(r"[/:]", self.spec)[-1]

    def looks_like_ids(self) -> bool:
        """Values that could name a saga: not booleans, fractions or times."""
        sample = list(self.distinct())[:200]
        if len(sample) < 2:
            return False
        if all(v in ("true", "false") for v in sample):
            return False
        numeric = [v for v in sample if is_number(v)]
        if len(numeric) == len(sample) and not all(_INTEGER.fullmatch(v) for v in numeric):
            return False  # amounts, ratios
        return sum(1 for v in sample if is_time_value(v)) < len(sample) / 2


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a number (``12``, ``-0.5``, ``1e3``)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass
class TopicProfile:
    """The sampled records of one topic with their documents and sources."""

    topic: str
    records: list[SampledRecord]
    documents: list[Any]
    sources: dict[str, SourceValues] = field(default_factory=dict)

    @property
    def json_share(self) -> float:
        return sum(1 for d in self.documents if isinstance(d, dict)) / max(len(self.records), 1)

    @property
    def change_stream(self) -> bool:
        """Most records are change-data-capture envelopes or outbox rows: they repeat what
        the services' own topics say, so they must not join the flows."""
        hits = sum(1 for d in self.documents if isinstance(d, dict) and _is_change_record(d))
        return hits >= 0.5 * max(len(self.records), 1)


#: Debezium's envelope, Kafka Connect's JSON with schema, and an outbox table's row.
_ENVELOPES = ({"before", "after", "op"}, {"schema", "payload"})
_OUTBOX_IDS = {"aggregateid", "aggregate_id", "aggregateId"}


def _is_change_record(document: dict[str, Any]) -> bool:
    keys = set(document)
    if any(envelope <= keys for envelope in _ENVELOPES):
        return True
    return bool(keys & _OUTBOX_IDS) and "payload" in keys


def profile_topics(records: Sequence[SampledRecord]) -> dict[str, TopicProfile]:
    """The records by topic, each with every source seen on it and its value per record."""
    by_topic: dict[str, list[SampledRecord]] = {}
    for r in records:
        by_topic.setdefault(r.topic, []).append(r)
    profiles: dict[str, TopicProfile] = {}
    for topic, rs in sorted(by_topic.items()):
        documents = [parse_payload(r.value) for r in rs]
        per_record = [record_sources(r, d) for r, d in zip(rs, documents, strict=True)]
        specs = sorted({spec for found in per_record for spec in found})
        profile = TopicProfile(topic, rs, documents)
        for spec in specs:
            profile.sources[spec] = SourceValues(spec, [found.get(spec, "") for found in per_record])
        profiles[topic] = profile
    return profiles
