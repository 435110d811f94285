"""The query layer's filter and result types (re-exported by ``sagascope.queries``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sagascope.queries.rows import from_columns
from sagascope.store.headers import rebuild

#: Every status a saga can have; the first four come from ``ce_sagastatus`` or status rules.
STATUSES: tuple[str, ...] = (
    "running",
    "stalled",
    "completed",
    "failed",
    "compensating",
    "compensated",
)
#: Statuses after which nothing more is expected.
FINISHED_STATUSES: tuple[str, ...] = ("completed", "failed", "compensated")


@dataclass(frozen=True)
class SagaFilter:
    """Which sagas a question is about; ``None`` means no restriction.

    Times select sagas active in ``[time_from, time_to)`` (by event time); ``attribute`` is
    ``"key=value"`` (or a ``(key, value)`` pair) matched against a message header or a
    top-level (or dotted ``a.b``) field of the JSON payload.
    """

    time_from: datetime | None = None
    time_to: datetime | None = None
    saga_type: str | None = None
    status: str | None = None
    service: str | None = None
    #: Sagas that passed through this step: a message of that step, or of that type when it
    #: names no step (the process map's activities).
    step: str | None = None
    attribute: str | tuple[str, str] | None = None
    #: Saga ids starting with this text.
    saga_id_prefix: str | None = None
    #: Sagas whose last message was of this step (or type, when it carries no step).
    current_step: str | None = None
    #: Sagas in which step (or type) ``b`` directly followed ``a``: a process-map arrow.
    transition: tuple[str, str] | None = None
    #: Failing sagas of one cause, as :class:`FailureCount` names it: ``(saga type, step,
    #: service, message type, reason)``, each matched exactly (an empty reason: none given).
    cause: tuple[str, str, str, str, str] | None = None


@dataclass(frozen=True)
class StallRule:
    """A threshold for sagas of ``saga_type`` silent after ``step`` (``"*"`` matches any).

    The alerter resolves its configured and learned thresholds into these; the first
    matching rule wins, and the default threshold applies where none matches.
    """

    saga_type: str
    step: str
    threshold_s: float


@dataclass(frozen=True)
class FlowMessage:
    """One message of a flow (a ``messages`` row, duplicates folded into it)."""

    message_id: str
    causation_id: str
    saga_id: str
    saga_type: str
    trace_id: str
    span_id: str
    kind: str
    type: str
    source: str
    step: str
    saga_status: str
    compensates: str
    event_time: datetime
    kafka_time: datetime
    topic: str
    partition: int
    offset: int
    headers: dict[str, str]
    payload: str
    payload_size: int
    payload_truncated: bool
    correlation: str
    parse_error: str
    #: Extra copies received with the same ``message_id`` (0 for none).
    duplicates: int = 0
    #: ``(topic, partition, offset)`` of every copy, the shown one first.
    copies: tuple[tuple[str, int, int], ...] = ()
    #: The message it was caused by is not part of the flow.
    cause_missing: bool = False
    #: Seconds by which this message's event time precedes its cause's (a skewed clock).
    skew_s: float = 0.0
    #: Causal depth (0 for a message whose cause is not in the flow).
    depth: int = 0

    @classmethod
    def from_row(
        cls, r: Mapping[str, Any], *, cause_missing: bool, skew_s: float, depth: int
    ) -> FlowMessage:
        """A message from its ``messages`` row (``FLOW_COLUMNS``, with ``duplicates`` and
        ``copies`` added by duplicate folding) and its place in the causal order."""
        return from_columns(
            cls, r,
            partition=int(r["partition"]),
            offset=int(r["offset"]),
            # The headers as received: the stored rest plus those the columns reproduce.
            headers=rebuild(r),
            payload_size=int(r["payload_size"]),
            payload_truncated=bool(r["payload_truncated"]),
            copies=tuple(r["copies"]),
            cause_missing=cause_missing,
            skew_s=skew_s,
            depth=depth,
        )

    @property
    def duplicated(self) -> bool:
        return self.duplicates > 0


@dataclass(frozen=True)
class Flow:
    """A saga's messages in causal order, with its derived status."""

    key: str
    #: How ``key`` was matched: ``saga_id``, ``message_id`` or ``trace_id``.
    matched_by: str
    saga_id: str
    saga_type: str
    status: str
    messages: list[FlowMessage]
    trace_ids: tuple[str, ...]
    #: The saga's causal start (the event time of its first message heard), as the saga
    #: state has it; for messages of no saga, their earliest event time.
    started: datetime | None
    #: The latest event time of its messages.
    last_event: datetime | None
    #: Other sagas sharing the trace or message asked for.
    related_sagas: tuple[str, ...] = ()
    #: Cycle time as the saga state defines it (the Overview's and the CLI's), when known.
    cycle_time_s: float | None = None

    @property
    def duration_s(self) -> float:
        """The saga's cycle time: the saga state's when known, else first to last event."""
        if self.cycle_time_s is not None:
            return self.cycle_time_s
        if self.started is None or self.last_event is None:
            return 0.0
        return (self.last_event - self.started).total_seconds()

    @property
    def duplicates(self) -> int:
        return sum(m.duplicates for m in self.messages)


@dataclass(frozen=True)
class SagaSummary:
    saga_id: str
    saga_type: str
    status: str
    started: datetime
    last_event: datetime
    last_kafka_time: datetime
    duration_s: float
    messages: int
    last_step: str
    last_type: str
    last_source: str
    #: Seconds between the last message's Kafka time and the watermark.
    silent_s: float


@dataclass(frozen=True)
class StalledSaga:
    saga_id: str
    saga_type: str
    #: Step (or, when messages carry none, type) of the last message heard.
    step: str
    last_type: str
    #: What is expected next, e.g. ``PaymentReceived (reply to RetrievePayment)``.
    waiting_for: str
    #: Kafka time of the last message heard.
    since: datetime
    threshold_s: float
    silent_s: float
    status: str = "stalled"


@dataclass(frozen=True)
class CycleTimeStats:
    """Cycle time (first to last event time) of finished sagas, in seconds."""

    saga_type: str
    count: int
    p50_s: float
    p90_s: float
    p95_s: float
    p99_s: float
    mean_s: float
    max_s: float
    #: Bucket start for ``cycle_times_over_time`` (by the time sagas finished), else None.
    bucket: datetime | None = None


@dataclass(frozen=True)
class ThroughputPoint:
    bucket: datetime
    messages: int
    sagas_started: int
    sagas_finished: int
    #: The bucket is not over at the watermark (the data's "now"): its counts will grow.
    partial: bool = False


@dataclass(frozen=True)
class Transition:
    """Time from a message of ``from_step`` to the next message of the saga (event time)."""

    saga_type: str
    from_step: str
    to_step: str
    count: int
    p50_s: float
    p90_s: float
    p95_s: float
    p99_s: float
    max_s: float


@dataclass(frozen=True)
class FailureCount:
    """Sagas that failed for one cause: the step, service and message that failed them.

    A saga counts once, at its cause: the message that reported the failure (or, when the
    failure was decided on an earlier event, that event). A compensation is not a failure.
    """

    saga_type: str
    step: str
    service: str
    #: The cause's message type, e.g. ``HotelUnavailable``.
    error: str
    #: Failing sagas (one cause message each).
    count: int
    sagas: int
    last_seen: datetime
    example_saga_id: str
    #: The reason the message gives (``error`` or ``reason`` field or header), if any.
    reason: str = ""
    #: The sagas' current status: ``failed``, ``compensating``, ``compensated`` or ``stalled``.
    status: str = ""


@dataclass(frozen=True)
class CompensationPair:
    """A step a compensating saga had done, beside its undo.

    ``state``: ``completed`` (the undo's completion event arrived), ``pending`` (undo asked,
    no completion yet), ``missing`` (no undo asked), ``failed`` (the undo reported failure)
    or ``duplicated`` (undone more than once).
    """

    saga_id: str
    saga_type: str
    step: str
    done_at: datetime
    undo_types: tuple[str, ...]
    undo_at: datetime | None
    undo_count: int
    state: str
    #: When the undo's completion event arrived, and its type.
    completed_at: datetime | None = None
    completion_type: str = ""


#: Pairing states, problems first: the order the pairing is shown in.
PAIR_STATES = ("failed", "missing", "pending", "duplicated", "completed")


@dataclass(frozen=True)
class CompensationSummary:
    """How many pairs are in each state, and the first pairs to look at.

    ``pairs`` holds at most ``limit`` pairs in ``PAIR_STATES`` order (problems first), the
    latest done first within a state; ``counts`` covers every pair.
    """

    counts: dict[str, int]
    pairs: list[CompensationPair]
    limit: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class ProcessNode:
    activity: str
    #: Times the activity happened (a saga may pass it more than once).
    count: int
    #: Sagas starting / ending with this activity.
    starts: int = 0
    ends: int = 0
    #: Sagas that passed through it: what ``SagaFilter(step=activity)`` lists.
    sagas: int = 0


@dataclass(frozen=True)
class ProcessEdge:
    source: str
    target: str
    #: Times ``target`` directly followed ``source``.
    count: int
    median_s: float
    p95_s: float
    #: Sagas that took this arrow: what ``SagaFilter(transition=(source, target))`` lists.
    sagas: int = 0


@dataclass(frozen=True)
class ProcessMap:
    """Directly-follows graph discovered from traffic (activities by ``by``: type or step)."""

    nodes: list[ProcessNode] = field(default_factory=list)
    edges: list[ProcessEdge] = field(default_factory=list)
    sagas: int = 0


@dataclass(frozen=True)
class Variant:
    activities: tuple[str, ...]
    count: int
    share: float
    median_cycle_s: float


@dataclass(frozen=True)
class SagaPage:
    """One page of the saga list and the exact count of all sagas matching the filter."""

    sagas: list[SagaSummary]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True)
class SagaDiagnosis:
    """Why a saga is where it is: what it last did, what it waits for, against which limit."""

    saga_id: str
    status: str
    #: Step (or type) of the last message heard, its type and service.
    last_step: str
    last_type: str
    last_source: str
    #: What usually comes next after the last message (from the process map); empty if unknown.
    waiting_for: str
    #: Kafka time of the last message heard, and the silence up to the watermark.
    since: datetime
    silent_s: float
    threshold_s: float
    #: Where the threshold comes from, e.g. ``rule trip-booking/BookHotel`` or ``default``.
    threshold_source: str
    #: The watermark silence is measured against ("now" of the data).
    as_of: datetime
    #: For a failed or compensating saga: its cause.
    failure: FailureCount | None = None


#: An alert group's state, in the order a person deals with them: ``open`` (open alerts nobody
#: has taken), ``acknowledged`` (open, someone is on it), ``silenced`` (open, notifications held
#: until the silence ends), ``resolved`` (none open).
GROUP_STATES: tuple[str, ...] = ("open", "acknowledged", "silenced", "resolved")


@dataclass(frozen=True)
class AlertGroup:
    """Alerts of one saga type and step, as one line for a human.

    ``handled_*`` describe the group's latest acknowledgement or silence when it applies to
    the alerts open now (``state`` says which); they are empty otherwise.
    """

    saga_type: str
    step: str
    #: One of :data:`GROUP_STATES`.
    state: str
    #: Alerts open now (under a silence or not).
    open: int
    #: Alerts resolved within the range asked about.
    resolved: int
    #: What the open alerts wait for (in a resolved group: what its alerts waited for), as
    #: ``(message type, how many)``, most first; a wait that names no message type (``reply
    #: to RetrievePayment``) counts under its own text.
    waiting_for: tuple[tuple[str, int], ...]
    #: Kafka time of the last message of the open alert silent longest, and its saga.
    oldest_since: datetime | None
    example_saga_id: str
    newest_opened: datetime | None
    last_resolved: datetime | None
    #: ``acknowledged`` or ``silenced``; who, when, a silence's end and the note left.
    handled_action: str = ""
    handled_by: str = ""
    handled_at: datetime | None = None
    silenced_until: datetime | None = None
    note: str = ""

    @property
    def waiting_text(self) -> str:
        """``PaymentReceived ×7, StockReserved ×2`` (``unknown`` for alerts that do not say)."""
        return ", ".join(f"{what or 'unknown'} ×{n}" for what, n in self.waiting_for)

    def handled_text(self, when: Callable[[datetime], str]) -> str:
        """``sam at 08:12 UTC``, and a silence's end (``, until 09:12 UTC``); empty when
        nobody handles the group. ``when`` writes a moment (each view its own way)."""
        if not self.handled_by or self.handled_at is None:
            return ""
        text = f"{self.handled_by} at {when(self.handled_at)} UTC"
        if self.silenced_until is not None:
            text += f", until {when(self.silenced_until)} UTC"
        return text


@dataclass(frozen=True)
class AlertCounts:
    """The alert numbers every view shows, summed from the same groups so they agree."""

    #: Open alerts not under a silence (acknowledged ones included: they are still open).
    open: int = 0
    #: Of ``open``, those in acknowledged groups.
    acknowledged: int = 0
    #: Open alerts in silenced groups: not counted as open.
    silenced: int = 0
    #: Resolved within the range asked about.
    resolved: int = 0

    @classmethod
    def of(cls, groups: Sequence[AlertGroup]) -> AlertCounts:
        return cls(
            open=sum(g.open for g in groups if g.state in ("open", "acknowledged")),
            acknowledged=sum(g.open for g in groups if g.state == "acknowledged"),
            silenced=sum(g.open for g in groups if g.state == "silenced"),
            resolved=sum(g.resolved for g in groups),
        )


@dataclass(frozen=True)
class StepTime:
    """Where time goes at one step of one service: waiting before it versus handling it."""

    saga_type: str
    step: str
    service: str
    count: int
    wait_p50_s: float
    wait_p95_s: float
    handle_count: int
    handle_p50_s: float
    handle_p95_s: float


@dataclass(frozen=True)
class Freshness:
    """How current the stored data is, read at ``checked_at`` (the store's clock)."""

    checked_at: datetime
    #: Time up to which every partition is stored (the collector's progress); None before a
    #: collector reported any.
    watermark: datetime | None
    #: When the newest message was stored (its ingest time); None for an empty store.
    newest_message: datetime | None

    def age_s(self, moment: datetime | None) -> float | None:
        return None if moment is None else max((self.checked_at - moment).total_seconds(), 0.0)

    def warning(self, stale_after_s: float) -> str:
        """Why the data may be stale, for a person; empty when both times are recent enough.

        A collector that stopped and a quiet night both show as "nothing new": the watermark
        (refreshed by a running collector even without traffic) tells them apart.
        """
        from sagascope.queries.formatting import format_duration

        watermark_age = self.age_s(self.watermark)
        newest_age = self.age_s(self.newest_message)
        if watermark_age is not None and watermark_age > stale_after_s:
            return (f"The collector has not reported progress for {format_duration(watermark_age)}"
                    f" (watermark {self.watermark:%Y-%m-%d %H:%M:%S} UTC): is it running and "
                    "keeping up? Numbers stop at that time.")
        if newest_age is not None and newest_age > stale_after_s:
            return (f"No message has arrived for {format_duration(newest_age)} (newest stored "
                    f"{self.newest_message:%Y-%m-%d %H:%M:%S} UTC).")
        return ""

