"""What the product must show for a generated saga system, computed in plain Python.

The oracle reads the messages the generator made (their true times and clock errors) and the
generator's own account of each saga (what failed, at which message, which undos happened);
it applies the README's definitions, never the product's SQL:

- a saga's status: the latest ``ce_sagastatus`` by Kafka time; unfinished and silent past
  the threshold (to the watermark) is ``stalled``;
- cycle time: from the event time of the first message heard (the causal start) to the
  latest event time of the saga, so no clock makes it negative;
- a failure counts once, at the message that reported it (its step, else the step of the
  command it answers, else its type);
- an undo is paired with each step the saga did (a failed step needs none);
- process map: each saga's messages by arrival, copies once; "waiting now": unfinished sagas
  (running, stalled, compensating) by the step of their last message;
- per minute: messages (by event time), sagas started, sagas finished (at their end), every
  minute from the first to the watermark's, which is partial.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from truth_generator import THRESHOLD_S, Message, SagaSystem

_RANK = ("compensating", "failed", "completed", "compensated")
FINISHED = ("completed", "failed", "compensated")
REASON_FIELDS = ("error", "reason", "failureReason")  # the product reads them in this order


@dataclass
class SagaFacts:
    saga_id: str
    saga_type: str
    status: str
    marker: str
    started_ms: int
    last_event_ms: int
    ended_ms: int
    last_kafka_ms: int
    last_step: str
    messages: int
    silent_s: float

    @property
    def duration_s(self) -> float:
        return (self.ended_ms - self.started_ms) / 1000.0


@dataclass
class Cause:
    saga_type: str
    step: str
    service: str
    error: str
    reason: str
    status: str


@dataclass
class Expected:
    sagas: dict[str, SagaFacts]
    causes: dict[str, Cause]
    #: (saga id, step undone) -> pairing state.
    pairs: dict[tuple[str, str], str]
    #: saga type -> (a, b) -> count, start/end edges left out.
    edges: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    #: saga type -> step (else type) -> sagas through it, and (a, b) -> sagas that took it,
    #: on the dashboard's map (activities by step).
    step_sagas: dict[str, Counter[str]] = field(default_factory=dict)
    arrow_sagas: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    #: saga type -> step -> status -> count, for unfinished sagas.
    waiting: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    def of_type(self, saga_type: str) -> list[SagaFacts]:
        return [s for s in self.sagas.values() if s.saga_type == saga_type]

    def status_counts(self, saga_type: str) -> dict[str, int]:
        counts = Counter(s.status for s in self.of_type(saga_type))
        return {status: counts.get(status, 0) for status in
                ("running", "stalled", "completed", "failed", "compensating", "compensated")}

    def cycle_percentiles(self, saga_type: str) -> tuple[int, float, float]:
        """(finished sagas, p50, p95) of cycle times, ClickHouse's inclusive quantiles."""
        values = sorted(s.duration_s for s in self.of_type(saga_type) if s.status in FINISHED)
        return len(values), inclusive_quantile(values, 0.5), inclusive_quantile(values, 0.95)

    def failure_counts(self, saga_type: str) -> Counter[tuple[str, ...]]:
        return Counter(
            (c.step, c.service, c.error, c.reason, c.status)
            for saga_id, c in self.causes.items() if c.saga_type == saga_type
        )

    def per_minute(self, system: SagaSystem, saga_type: str,
                   watermark_ms: int) -> list[tuple[int, int, int, int, bool]]:
        """(bucket start ms, messages, started, finished, partial) for every minute."""
        messages = Counter(m.event_ms // 60_000 for m in system.messages
                           if m.saga_type == saga_type)
        started = Counter(s.started_ms // 60_000 for s in self.of_type(saga_type))
        finished = Counter(s.ended_ms // 60_000 for s in self.of_type(saga_type)
                           if s.status in FINISHED)
        keys = set(messages) | set(started) | set(finished)
        if not keys:
            return []
        last = max(max(keys), watermark_ms // 60_000)
        return [
            (k * 60_000, messages.get(k, 0), started.get(k, 0), finished.get(k, 0),
             (k + 1) * 60_000 > watermark_ms)
            for k in range(min(keys), last + 1)
        ]


def inclusive_quantile(values: list[float], level: float) -> float:
    if not values:
        return 0.0
    position = (len(values) - 1) * level
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def reason_of(message: Message) -> str:
    for name in REASON_FIELDS:
        value = message.payload.get(name)
        if value:
            return str(value)
    return ""


def step_of(message: Message, by_id: dict[str, Message]) -> str:
    """A message's step: its own, else that of the command it answers, else its type."""
    if message.step:
        return message.step
    parent = by_id.get(message.causation_id)
    if message.kind != "command" and parent is not None and parent.kind == "command":
        return parent.step or parent.type
    return message.type


def _arrival(m: Message) -> tuple[int, int]:
    return (m.kafka_ms, m.event_ms)


def _saga_facts(saga_id: str, rows: list[Message], watermark_ms: int) -> SagaFacts:
    first = min(rows, key=_arrival)
    last = max(rows, key=lambda m: (m.kafka_ms, m.event_ms, m.step, m.type, m.kind, m.source))
    marks = [(m.kafka_ms, _RANK.index(m.status) + 1, m.status) for m in rows if m.status]
    marker = max(marks)[2] if marks else ""
    silent_s = max(watermark_ms - last.kafka_ms, 0) / 1000.0
    if marker in FINISHED:
        status = marker
    elif silent_s > THRESHOLD_S:
        status = "stalled"
    elif marker == "compensating":
        status = "compensating"
    else:
        status = "running"
    return SagaFacts(
        saga_id=saga_id, saga_type=first.saga_type, status=status, marker=marker,
        started_ms=first.event_ms, last_event_ms=last.event_ms,
        ended_ms=max(m.event_ms for m in rows), last_kafka_ms=last.kafka_ms,
        last_step=last.step or last.type, messages=len(rows), silent_s=silent_s,
    )


def _path(rows: Iterable[Message], by: str = "type") -> list[str]:
    """Activities (message types, or steps else types) by arrival, each message once."""
    seen: set[str] = set()
    out = []
    for m in sorted(rows, key=_arrival):
        if m.message_id in seen:
            continue
        seen.add(m.message_id)
        out.append(m.type if by == "type" else (m.step or m.type))
    return out


def expect(system: SagaSystem, watermark_ms: int) -> Expected:
    by_saga: dict[str, list[Message]] = defaultdict(list)
    for m in system.messages:
        by_saga[m.saga_id].append(m)
    by_id = {m.message_id: m for m in system.messages}
    sagas = {sid: _saga_facts(sid, rows, watermark_ms) for sid, rows in by_saga.items()}
    causes = {}
    for truth in system.sagas:
        facts = sagas[truth.saga_id]
        if truth.cause is None or facts.marker not in ("failed", "compensating", "compensated"):
            continue
        c = truth.cause
        causes[truth.saga_id] = Cause(truth.saga_type, step_of(c, by_id), c.source, c.type,
                                      reason_of(c), facts.status)
    undone: dict[str, set[str]] = defaultdict(set)
    for m in system.messages:
        if m.compensates:
            undone[m.saga_type].add(m.compensates)
    pairs = {
        (truth.saga_id, key): fate
        for truth in system.sagas for key, fate in truth.undos.items()
        if key in undone[truth.saga_type]
    }
    edges: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    step_sagas: dict[str, Counter[str]] = defaultdict(Counter)
    arrow_sagas: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    for sid, rows in by_saga.items():
        path = _path(rows)
        edges[sagas[sid].saga_type].update(itertools.pairwise(path))
        steps = _path(rows, by="step")
        step_sagas[sagas[sid].saga_type].update(set(steps))
        arrow_sagas[sagas[sid].saga_type].update(set(itertools.pairwise(steps)))
    waiting: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for s in sagas.values():
        if s.status in ("running", "stalled", "compensating"):
            per_step = waiting[s.saga_type].setdefault(s.last_step, {})
            per_step[s.status] = per_step.get(s.status, 0) + 1
    return Expected(sagas=sagas, causes=causes, pairs=pairs, edges=dict(edges),
                    step_sagas=dict(step_sagas), arrow_sagas=dict(arrow_sagas),
                    waiting=dict(waiting))
