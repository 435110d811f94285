"""Discovery end to end: sampled records in, proposed correlation rules out, with what they
achieve measured by the collector's own decoder on the same records."""

from __future__ import annotations

import ast
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sagascope.collector.decode.correlate import Correlator, parse_event_time
from sagascope.collector.decode.redact import Redactor
from sagascope.collector.decode.rows import DecodeContext, decode_message
from sagascope.collector.discover.fields import (
    OutcomeField,
    TimeField,
    find_outcome,
    find_saga_type,
    find_time,
    find_type,
)
from sagascope.collector.discover.linking import IdSpace, find_id_spaces
from sagascope.collector.discover.meaning import Step, learn_meanings
from sagascope.collector.discover.profile import TopicProfile, profile_topics
from sagascope.collector.discover.sample import SampledRecord
from sagascope.settings import CorrelationRule, OutcomeValue
from sagascope.store.schema import STATUS_RANK

#: Saga statuses in the order the store ranks markers of the same Kafka time.
_STATUS_RANK: tuple[str, ...] = tuple(ast.literal_eval(STATUS_RANK))


@dataclass(frozen=True)
class TopicFinding:
    """What discovery found on one topic and what its rule achieves there."""

    topic: str
    records: int
    correlated: int
    saga_id: str = ""
    type: str = ""
    event_time: TimeField | None = None
    outcome: OutcomeField | None = None
    #: Why no rule was proposed (for a topic left unattached).
    unattached: str = ""


@dataclass
class Proposal:
    """Proposed rules, and what the collector would make of the sampled records with them."""

    rules: list[CorrelationRule]
    topics: list[TopicFinding]
    #: The decoded rows of the sampled records (the collector's ``messages`` rows).
    rows: list[dict[str, Any]]
    ambiguities: list[str] = field(default_factory=list)
    #: Candidate ids set aside, and why.
    rejected: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        return len(self.rows)

    @property
    def correlated(self) -> int:
        return sum(1 for r in self.rows if r["saga_id"])

    def flows(self) -> dict[str, list[dict[str, Any]]]:
        """saga id -> its rows in event-time order."""
        out: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows:
            if row["saga_id"]:
                out.setdefault(row["saga_id"], []).append(row)
        for rows in out.values():
            rows.sort(key=lambda r: (row_time(r["event_time"]), row_time(r["kafka_time"]),
                                     r["topic"], r["offset"]))
        return out

    def length_distribution(self) -> dict[str, float]:
        lengths = sorted(len(rows) for rows in self.flows().values())
        if not lengths:
            return {}
        return {
            "min": lengths[0], "median": statistics.median(lengths),
            "p90": lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))], "max": lengths[-1],
        }

    def statuses(self) -> Counter[str]:
        return Counter(flow_status(rows) for rows in self.flows().values())


def row_time(text: str) -> datetime:
    """A decoded row's time (``seconds.mmm``, or ``YYYY-MM-DD hh:mm:ss.mmm`` before 2001)."""
    if "-" in text:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    seconds, _, millis = text.partition(".")
    return datetime.fromtimestamp(int(seconds), UTC) + timedelta(milliseconds=int(millis or 0))


def flow_status(rows: Sequence[Mapping[str, Any]]) -> str:
    """The status the store derives from these rows' markers (latest by Kafka time, then
    rank), before stall thresholds: ``running`` when none."""
    marked = [(row_time(r["kafka_time"]), _STATUS_RANK.index(r["saga_status"]), r["saga_status"])
              for r in rows if r["saga_status"] in _STATUS_RANK]
    return max(marked)[2] if marked else "running"


def discover(records: Sequence[SampledRecord]) -> Proposal:
    """Propose correlation rules for ``records`` (sampled from the topics to tie together)."""
    profiles = profile_topics(records)
    spaces, rejected = find_id_spaces(profiles)
    findings: dict[str, TopicFinding] = {}
    rules: list[CorrelationRule] = []
    ambiguities: list[str] = []
    names: set[str] = set()
    for space in spaces:
        fields = {t: _topic_fields(profiles[t], spec) for t, spec in space.sources.items()}
        flows = _flows(space, profiles, fields)
        meanings = learn_meanings(flows)
        ambiguities += meanings.ambiguities
        saga_type = _saga_type_name(flows, names)
        for topic, spec in sorted(space.sources.items()):
            found = fields[topic]
            type_spec, time, outcome = found.type, found.time, found.outcome
            seen = {s.type for flow in flows for s in flow if s.topic == topic}
            rules.append(CorrelationRule(
                topic=re.escape(topic), saga_id=spec, key_fallback=False,
                type=type_spec or "topic", event_time=time.spec if time else "",
                saga_type=found.saga_type or "", saga_type_value=saga_type,
                outcome=outcome.spec if outcome else "",
                outcomes=_failure_outcomes(outcome),
                types=tuple(m for t, m in sorted(meanings.types.items()) if t in seen),
            ))
            findings[topic] = TopicFinding(topic, len(profiles[topic].records), 0, spec,
                                           type_spec or "topic", time, outcome)
    for topic, profile in profiles.items():
        if topic not in findings:
            findings[topic] = TopicFinding(topic, len(profile.records), 0,
                                           unattached=_why_unattached(profile))
    rows = _decode(records, rules)
    per_topic = Counter(r["topic"] for r in rows if r["saga_id"])
    topics = [replace(f, correlated=per_topic[f.topic]) for _, f in sorted(findings.items())]
    return Proposal(rules, topics, rows, ambiguities,
                    [f"{s.describe()}: {s.rejected}" for s in rejected])


@dataclass(frozen=True)
class _Fields:
    """The sources found on one topic besides its saga id."""

    type: str | None
    time: TimeField | None
    outcome: OutcomeField | None
    saga_type: str | None


def _topic_fields(profile: TopicProfile, id_spec: str) -> _Fields:
    saga_type = find_saga_type(profile, {id_spec})
    taken = {id_spec} | ({saga_type} if saga_type else set())
    time = find_time(profile, taken)
    taken |= {time.spec} if time else set()
    type_spec = find_type(profile, taken)
    outcome = find_outcome(profile, taken | ({type_spec} if type_spec else set()))
    return _Fields(type_spec, time, outcome, saga_type)


def _flows(
    space: IdSpace, profiles: Mapping[str, TopicProfile],
    fields: Mapping[str, _Fields],
) -> list[list[Step]]:
    flows = []
    for refs in space.groups.values():
        timed = []
        for topic, i in refs:
            profile = profiles[topic]
            found = fields[topic]
            type_spec, time, outcome = found.type, found.time, found.outcome
            record = profile.records[i]
            moment = None
            if time is not None:
                moment = parse_event_time(profile.sources[time.spec].values[i])
            when = moment or datetime.fromtimestamp(record.timestamp / 1000, UTC)
            type_name = profile.sources[type_spec].values[i] if type_spec else topic
            failed = (outcome is not None
                      and profile.sources[outcome.spec].values[i] in outcome.failures)
            timed.append(((when, record.timestamp, topic, record.offset),
                          Step(topic, type_name or topic, failed)))
        timed.sort(key=lambda x: x[0])
        flows.append([s for _, s in timed])
    return flows


def _saga_type_name(flows: Sequence[Sequence[Step]], taken: set[str]) -> str:
    """The topic most flows start on: a name to edit, not a guess at the business term."""
    starts = Counter(flow[0].topic for flow in flows if flow)
    name = starts.most_common(1)[0][0] if starts else "saga"
    while name in taken:
        name += "'"
    taken.add(name)
    return name


def _why_unattached(profile: TopicProfile) -> str:
    if profile.change_stream:
        return "a change-data-capture or outbox stream (it repeats what other topics say)"
    if profile.json_share < 0.5:
        return "its payloads are not JSON objects and no header or key links it"
    return "no field of it shares values with the flows"


def _decode(records: Sequence[SampledRecord], rules: Sequence[CorrelationRule]) -> list[dict[str, Any]]:
    """The rows the collector would store for ``records`` under ``rules``."""
    ctx = DecodeContext(Correlator(rules), Redactor(()), 65536)
    return [decode_message(r, ctx, r.timestamp) for r in records]


def _failure_outcomes(outcome: OutcomeField | None) -> tuple[OutcomeValue, ...]:
    return tuple(OutcomeValue(v, "failed") for v in outcome.failures) if outcome else ()
