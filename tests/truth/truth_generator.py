"""Random saga systems, seeded: the messages real teams' services send, with the truth known.

A system is a few saga types, each orchestrated or choreographed, with its own services,
topics (one shared event topic, or a command and a reply topic per service), names of
failures that never say "fail" (``HotelUnavailable``, ``OutOfStock``), reasons in ``reason``
/ ``error`` / ``failureReason`` payload fields, status markers on the failing message or on
the orchestrator's decision after it, compensations that complete, fail, stay pending, are
asked twice or are forgotten, retried commands, redelivered records, services whose clock runs
behind or ahead, sagas resumed in a new trace, sagas still running or stalled, and a
participant (or a whole saga type) that never sets ``step``.

Every message is a :class:`Message` with its true time; the Kafka time is the true time, the
event time (``ce_time``) the true time plus the sending service's clock error. What the
product must show is computed from these by ``oracle.py``.

    system = generate_system(seed=7, now=datetime.now(UTC))
    system.messages      # in the order the services sent them
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

#: Seconds a saga may be silent before it counts as stalled (the harness's one threshold).
THRESHOLD_S = 600.0

#: Failure reply names per participant (none of them says "fail").
_FAILURE_NAMES = ("Unavailable", "OutOfStock", "NoSeats", "CardDeclined", "Rejected",
                  "Refused", "Denied", "InsufficientFunds", "Expired")
_VERBS = ("Book", "Reserve", "Charge", "Allocate", "Confirm", "Schedule", "Issue")
_NOUNS = ("Flight", "Hotel", "Car", "Stock", "Payment", "Seat", "Room", "Ticket", "Parcel",
          "Invoice", "Visa", "Table")
_UNDO_VERBS = ("Cancel", "Refund", "Release", "Revert", "Void")
_REASONS = ("no rooms left", "card expired", "limit exceeded", "sold out", "region closed",
            "timeout at partner", "fraud check")


@dataclass
class Message:
    """One record as a service sent it, and when that truly happened."""

    saga_id: str
    saga_type: str
    type: str
    source: str
    kind: str
    topic: str
    true_ms: int
    skew_ms: int
    message_id: str
    causation_id: str = ""
    trace_id: str = ""
    step: str = ""
    status: str = ""
    compensates: str = ""
    payload: dict[str, object] = field(default_factory=dict)
    #: A copy of an earlier record (same ``ce_id``), redelivered later.
    redelivery: bool = False

    @property
    def kafka_ms(self) -> int:
        return self.true_ms

    @property
    def event_ms(self) -> int:
        return self.true_ms + self.skew_ms


@dataclass
class Step:
    """One step of a saga type: who does it and what its messages are called."""

    name: str
    service: str
    command: str
    done: str
    failure: str
    undo: str
    undone: str
    undo_refused: str


@dataclass
class SagaType:
    name: str
    orchestrated: bool
    orchestrator: str
    steps: list[Step]
    #: Steps are named on messages (``ce_step``); False: no service sets it (the README's
    #: example), undos name the command they undo.
    named_steps: bool
    #: A participant that never sets ``step`` even when the others do.
    stepless_service: str
    #: One topic for every message, or a command and a reply topic per service.
    shared_topic: bool
    #: Each message carries on the payload of the one it answers (``{**data, ...}``), an
    #: earlier attempt's error included: a reason only repeated is not the message's own.
    carries_payload: bool
    started_type: str
    completed_type: str
    compensated_type: str
    aborted_type: str


@dataclass
class SagaTruth:
    """What happened to one saga, as its services know it."""

    saga_id: str
    saga_type: str
    #: The outcome the services meant: completed, failed, compensated, compensating, running.
    outcome: str
    #: The message that reported the failure (None when nothing failed).
    cause: Message | None = None
    #: Per step it had done and had to undo: the undo's fate (completed, failed, pending,
    #: duplicated, missing).
    undos: dict[str, str] = field(default_factory=dict)


@dataclass
class SagaSystem:
    seed: int
    prefix: str
    saga_types: list[SagaType]
    messages: list[Message]
    sagas: list[SagaTruth]
    topics: list[str]
    #: Services whose clock is off, and by how many milliseconds.
    skews: dict[str, int]


def undo_key(kind: SagaType, step: Step) -> str:
    """What an undo names in ``ce_compensates``: the step where services name steps; else the
    command it undoes (the README's example), or, choreographed, the event it undoes."""
    named = kind.named_steps and step.service != kind.stepless_service
    if kind.orchestrated:
        return step.name if kind.named_steps else step.command
    return step.name if named else step.done


def _saga_type(rng: random.Random, prefix: str, index: int) -> SagaType:
    n_steps = rng.randint(2, 4)
    nouns = rng.sample(_NOUNS, n_steps)
    steps = []
    for noun in nouns:
        verb = rng.choice(_VERBS)
        undo = rng.choice(_UNDO_VERBS)
        steps.append(Step(
            name=f"{verb}{noun}",
            service=f"{noun.lower()}-svc",
            command=f"{verb}{noun}",
            done=f"{noun}{verb}ed".replace("eed", "ed"),
            failure=f"{noun}{rng.choice(_FAILURE_NAMES)}",
            undo=f"{undo}{noun}",
            undone=f"{noun}{undo}led" if undo == "Cancel" else f"{noun}{undo}ed".replace(
                "eed", "ed"),
            undo_refused=f"{undo}{noun}Refused",
        ))
    orchestrated = rng.random() < 0.6
    name = f"{prefix}-{'orch' if orchestrated else 'chor'}{index}"
    return SagaType(
        name=name,
        orchestrated=orchestrated,
        orchestrator=f"{name}-orchestrator",
        steps=steps,
        named_steps=rng.random() < 0.7,
        stepless_service=rng.choice(steps).service,
        shared_topic=rng.random() < 0.5,
        carries_payload=rng.random() < 0.5,
        started_type=f"{nouns[0]}Requested",
        completed_type=f"{nouns[0]}JourneyCompleted",
        compensated_type=f"{nouns[0]}JourneyCompensated",
        aborted_type=f"{nouns[0]}JourneyAborted",
    )


class _Writer:
    """Writes one saga's messages, advancing its true clock."""

    def __init__(self, system: _Build, kind: SagaType, saga_id: str, start_ms: int) -> None:
        self.b = system
        self.kind = kind
        self.saga_id = saga_id
        self.clock = start_ms
        self.trace = uuid.UUID(int=self.b.rng.getrandbits(128)).hex
        self.out: list[Message] = []

    def topic(self, service: str, kind: str) -> str:
        if self.kind.shared_topic:
            return f"{self.b.prefix}.{self.kind.name}.events"
        return f"{self.b.prefix}.{service}.{'commands' if kind == 'command' else 'replies'}"

    def send(self, type_: str, source: str, kind: str, *, cause: Message | None,
             step: str = "", status: str = "", compensates: str = "",
             payload: dict[str, object] | None = None, gap_s: tuple[float, float] = (0.2, 6.0),
             new_trace: bool = False) -> Message:
        rng = self.b.rng
        self.clock += int(rng.uniform(*gap_s) * 1000) + 1
        if new_trace:
            self.trace = uuid.UUID(int=rng.getrandbits(128)).hex
        if not self.kind.named_steps or (source == self.kind.stepless_service and kind != "command"):
            step = ""
        body: dict[str, object] = {"orderRef": self.saga_id, "amount": rng.randint(1, 900)}
        own_reason = any(k in REASON_FIELDS for k in (payload or {}))
        if self.kind.carries_payload and cause is not None and not own_reason:
            body.update({k: v for k, v in cause.payload.items() if k in REASON_FIELDS})
        body.update(payload or {})
        message = Message(
            saga_id=self.saga_id, saga_type=self.kind.name, type=type_, source=source,
            kind=kind, topic=self.topic(source, kind), true_ms=self.clock,
            skew_ms=self.b.skews.get(source, 0),
            message_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            causation_id=cause.message_id if cause else "", trace_id=self.trace, step=step,
            status=status, compensates=compensates, payload=body,
        )
        self.out.append(message)
        if rng.random() < 0.04:
            copy = Message(**{**message.__dict__, "redelivery": True,
                              "true_ms": message.true_ms + rng.randint(50, 900)})
            self.out.append(copy)
        return message


class _Build:
    def __init__(self, seed: int, prefix: str, rng: random.Random, skews: dict[str, int]) -> None:
        self.seed = seed
        self.prefix = prefix
        self.rng = rng
        self.skews = skews


#: Where services put the reason of a failure.
REASON_FIELDS = ("reason", "error", "failureReason")


def _reason(rng: random.Random, w: _Writer) -> dict[str, object]:
    """A reason in one of the fields, never one the saga gave before (so a repeated reason
    is always one carried along, never a message's own)."""
    used = {str(v) for m in w.out for k, v in m.payload.items() if k in REASON_FIELDS}
    text = rng.choice([r for r in _REASONS if r not in used] or [f"error {len(used)}"])
    if text in used:
        text = f"{text} ({len(used)})"
    return {rng.choice(REASON_FIELDS): text}


def _plan(rng: random.Random, n_steps: int) -> tuple[str, int]:
    """(outcome, index of the failing step or -1)."""
    roll = rng.random()
    if roll < 0.45:
        return "completed", -1
    if roll < 0.6:
        return "running", rng.randrange(n_steps)
    return "failing", rng.randrange(n_steps)


def _write_saga(b: _Build, kind: SagaType, saga_id: str,
                start_ms: int) -> tuple[list[Message], SagaTruth]:
    rng = b.rng
    w = _Writer(b, kind, saga_id, start_ms)
    outcome, stop_at = _plan(rng, len(kind.steps))
    truth = SagaTruth(saga_id, kind.name, outcome)
    first_source = kind.orchestrator if kind.orchestrated else kind.steps[0].service
    last = w.send(kind.started_type, first_source, "event", cause=None, step="Start",
                  gap_s=(0, 0.001))
    done: list[tuple[Step, Message]] = []
    for i, step in enumerate(kind.steps):
        resumed = rng.random() < 0.1
        if kind.orchestrated:
            command = w.send(step.command, kind.orchestrator, "command", cause=last,
                             step=step.name, new_trace=resumed)
            if rng.random() < 0.08:  # a retry: the same command again, answered once
                command = w.send(step.command, kind.orchestrator, "command", cause=last,
                                 step=step.name)
            elif rng.random() < 0.1:  # an attempt that failed (no status marker), retried
                attempt = w.send(step.failure, step.service, "event", cause=command,
                                 step=step.name, payload=_reason(rng, w))
                command = w.send(step.command, kind.orchestrator, "command", cause=attempt,
                                 step=step.name)
            asked = command
        else:
            asked = last
        if outcome == "running" and i == stop_at:
            if kind.orchestrated:
                last = asked
            truth.outcome = "running"
            return w.out, truth
        if outcome == "failing" and i == stop_at:
            return _fail(b, w, kind, truth, asked, step, done)
        # A choreographed saga's last participant says the saga is complete.
        closing = not kind.orchestrated and i == len(kind.steps) - 1
        last = w.send(step.done, step.service, "event", cause=asked, step=step.name,
                      new_trace=resumed and not kind.orchestrated,
                      status="completed" if closing else "")
        done.append((step, last))
    if kind.orchestrated:
        w.send(kind.completed_type, kind.orchestrator, "event", cause=last, step="Complete",
               status="completed")
    truth.outcome = "completed"
    return w.out, truth


def _fail(b: _Build, w: _Writer, kind: SagaType, truth: SagaTruth, asked: Message, step: Step,
          done: list[tuple[Step, Message]]) -> tuple[list[Message], SagaTruth]:
    rng = b.rng
    needs_undo = bool(done)
    marker = "compensating" if needs_undo else "failed"
    # The failing participant says so; either its reply carries the status marker, or the
    # orchestrator's decision after it does (then the reply still reports the failure).
    on_reply = not kind.orchestrated or rng.random() < 0.5
    failure = w.send(step.failure, step.service, "event", cause=asked, step=step.name,
                     status=marker if on_reply else "", payload=_reason(rng, w))
    truth.cause = failure
    last = failure
    if not on_reply:
        last = w.send(kind.aborted_type if not needs_undo else f"{kind.started_type}Unwinding",
                      kind.orchestrator, "event", cause=failure, status=marker)
    if not needs_undo:
        truth.outcome = "failed"
        return w.out, truth
    any_failed = any_pending = False
    for done_step, _ in reversed(done):
        key = undo_key(kind, done_step)
        fate = rng.choices(("completed", "failed", "pending", "duplicated", "missing"),
                           (0.6, 0.12, 0.12, 0.08, 0.08))[0]
        if not kind.orchestrated and fate in ("pending", "duplicated"):
            fate = "completed"
        truth.undos[key] = fate
        if fate == "missing":
            continue
        if kind.orchestrated:
            undo = w.send(done_step.undo, kind.orchestrator, "command", cause=last,
                          step=f"Undo{done_step.name}", compensates=key)
            if fate == "duplicated":
                undo = w.send(done_step.undo, kind.orchestrator, "command", cause=last,
                              step=f"Undo{done_step.name}", compensates=key)
            if fate == "pending":
                any_pending = True
                last = undo
                continue
            reply_type = done_step.undo_refused if fate == "failed" else done_step.undone
            last = w.send(reply_type, done_step.service, "event", cause=undo,
                          step=f"Undo{done_step.name}",
                          payload=_reason(rng, w) if fate == "failed" else None)
        else:
            reply_type = done_step.undo_refused if fate == "failed" else done_step.undone
            last = w.send(reply_type, done_step.service, "event", cause=last,
                          step=f"Undo{done_step.name}", compensates=key,
                          payload=_reason(rng, w) if fate == "failed" else None)
        any_failed = any_failed or fate == "failed"
    if any_pending:
        truth.outcome = "compensating"
        return w.out, truth
    closer = kind.orchestrator if kind.orchestrated else kind.steps[0].service
    if any_failed:
        w.send(kind.aborted_type, closer, "event", cause=last, status="failed")
        truth.outcome = "failed"
    elif rng.random() < 0.85:
        w.send(kind.compensated_type, closer, "event", cause=last, status="compensated")
        truth.outcome = "compensated"
    else:  # every undo done, the closing word never came
        truth.outcome = "compensating"
    return w.out, truth


def generate_system(seed: int, now: datetime, *, sagas: int | None = None) -> SagaSystem:
    """A random saga system: 1-3 saga types and their sagas, the last ones still going.

    A saga starts 25-50 minutes before ``now`` (silent for more than twice
    :data:`THRESHOLD_S` when it stops) or 2.5-4 minutes before it (silent for less than half
    of it), so the status of each is clear-cut against a watermark a few minutes after ``now``.
    """
    rng = random.Random(seed)
    prefix = f"truth{seed}"
    types = [_saga_type(rng, prefix, i) for i in range(rng.randint(1, 3))]
    services = sorted({s.service for t in types for s in t.steps}
                      | {t.orchestrator for t in types if t.orchestrated})
    skews: dict[str, int] = {}
    for service in rng.sample(services, min(len(services), rng.randint(1, 3))):
        skews[service] = rng.choice((-1, 1)) * rng.randint(5_000, 45_000)
    b = _Build(seed, prefix, rng, skews)
    now_ms = int(now.timestamp() * 1000)
    messages: list[Message] = []
    truths: list[SagaTruth] = []
    count = sagas if sagas is not None else rng.randint(12, 30)
    for i in range(count):
        kind = rng.choice(types)
        if rng.random() < 0.3:
            start_ms = now_ms - rng.randint(150_000, 240_000)
        else:
            start_ms = now_ms - rng.randint(25 * 60_000, 50 * 60_000)
        out, truth = _write_saga(b, kind, f"{prefix}-{i:04d}", start_ms)
        messages.extend(out)
        truths.append(truth)
    topics = sorted({m.topic for m in messages})
    return SagaSystem(seed=seed, prefix=prefix, saga_types=types, messages=messages,
                      sagas=truths, topics=topics, skews=skews)


def utc(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
