"""Per topic: which source is the event time, which the message type, which the outcome."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sagascope.collector.decode.correlate import parse_event_time
from sagascope.collector.discover import words as w
from sagascope.collector.discover.profile import (
    SourceValues,
    TopicProfile,
    is_number,
    is_time_value,
)

_TIME_NAMES = ("time", "ts", "timestamp", "date", "at", "occurred", "created", "when")
#: Names of type fields, best first (lower case, separators dropped).
_TYPE_NAMES = (
    "type", "eventtype", "messagetype", "typeid", "cetype", "commandtype", "replytype",
    "kind", "event", "eventname", "command", "conceptname", "activity", "action", "name",
)
_TYPE_VALUE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[ ._-]?[A-Za-z0-9]+)*")


def _plain(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class TimeField:
    spec: str
    #: ``epoch s``, ``epoch ms``, ``epoch µs`` or ``RFC 3339``
    unit: str


def time_unit(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return "RFC 3339"
    return "epoch µs" if abs(number) >= 1e14 else "epoch ms" if abs(number) >= 1e11 else "epoch s"


def find_time(profile: TopicProfile, taken: set[str]) -> TimeField | None:
    """The source holding event times, preferring a name that says so; None: Kafka time."""
    best: tuple[tuple[int, float], SourceValues] | None = None
    for spec, values in profile.sources.items():
        if spec in taken or spec == "key" or values.coverage < 0.9:
            continue
        present = [v for v in values.values if v][:200]
        if sum(1 for v in present if is_time_value(v)) < 0.95 * len(present):
            continue
        name = _plain(values.name)
        hinted = int(any(h == name or name.endswith(h) or name.startswith(h) for h in _TIME_NAMES))
        score = (hinted, values.coverage)
        if best is None or score > best[0]:
            best = (score, values)
    if best is None:
        return None
    first = next(v for v in best[1].values if v)
    assert parse_event_time(first) is not None
    return TimeField(best[1].spec, time_unit(first))


def find_type(profile: TopicProfile, taken: set[str]) -> str | None:
    """The source naming the message type; None when the topic carries none."""
    best: tuple[tuple[int, float, int], str] | None = None
    for spec, values in profile.sources.items():
        if spec in taken or spec == "key" or values.coverage < 0.9:
            continue
        distinct = values.distinct()
        if len(distinct) > 60 or len(distinct) > max(2, values.present // 2):
            continue
        if any(is_number(v) for v in distinct) or not all(_TYPE_VALUE.fullmatch(v) for v in distinct):
            continue
        name = _plain(values.name)
        if name in w.OUTCOME_NAMES:
            continue
        rank = _TYPE_NAMES.index(name) if name in _TYPE_NAMES else len(_TYPE_NAMES)
        humped = sum(1 for v in distinct if _named_like_a_type(v)) / len(distinct)
        if rank == len(_TYPE_NAMES) and (humped < 0.8 or len(distinct) < 2):
            continue
        score = (-rank, humped, -len(spec))
        if best is None or score > best[0]:
            best = (score, spec)
    return best[1] if best else None


def find_saga_type(profile: TopicProfile, taken: set[str]) -> str | None:
    """A field or header naming the saga type (Eventuate's ``command_saga_type``)."""
    for spec, values in sorted(profile.sources.items()):
        if spec in taken or values.coverage < 0.9 or not _plain(values.name).endswith("sagatype"):
            continue
        if len(values.distinct()) <= 20:
            return spec
    return None


@dataclass(frozen=True)
class OutcomeField:
    spec: str
    #: The values that report a failure.
    failures: tuple[str, ...]


def find_outcome(profile: TopicProfile, taken: set[str]) -> OutcomeField | None:
    """A field or header whose few values say success or failure (``success: false``)."""
    for spec, values in sorted(profile.sources.items()):
        if spec in taken or spec == "key":
            continue
        distinct = values.distinct()
        if not distinct or len(distinct) > 6:
            continue
        lowered = {v: v.lower() for v in distinct}
        failures = tuple(sorted(v for v, low in lowered.items() if low in w.FAILURE_VALUES))
        if not failures:
            continue
        if _plain(values.name) in w.OUTCOME_NAMES:
            return OutcomeField(spec, failures)
        # Unnamed, only words that say nothing but success or failure; never a bare flag
        # (``express: false`` is no failure).
        words_only = all(low in w.FAILURE_VALUES | w.SUCCESS_VALUES for low in lowered.values())
        if words_only and not set(lowered.values()) <= {"true", "false"}:
            return OutcomeField(spec, failures)
    return None


def _named_like_a_type(value: str) -> bool:
    """Two or more words of letters: ``StockReserved``, ``order_placed``, ``Create Fine``."""
    parts = w.words(value)
    return len(parts) >= 2 and all(p.isalpha() for p in parts)
