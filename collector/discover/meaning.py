"""What each message type means, learned from the flows an id space forms: which types are
commands and which their replies, which report a failure, which undo which step, which end
a saga that went well."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sagascope.collector.discover import words as w
from sagascope.settings import TypeMeaning

#: Share of a type's occurrences a pattern must hold in for discovery to believe it.
MOSTLY = 0.8


@dataclass(frozen=True)
class Step:
    """One message of a sampled flow, as discovery sees it."""

    topic: str
    type: str
    #: The message's outcome field reports a failure.
    outcome_failed: bool = False


@dataclass
class Meanings:
    """Per type its meaning, and what could not be decided (said to the user)."""

    types: dict[str, TypeMeaning] = field(default_factory=dict)
    ambiguities: list[str] = field(default_factory=list)


def _failed(step: Step) -> bool:
    return step.outcome_failed or w.reports_failure(step.type)


def learn_meanings(flows: Sequence[Sequence[Step]]) -> Meanings:
    """Kinds, steps, statuses and compensations of the types in ``flows`` (each in time order)."""
    out = Meanings()
    at: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for f, flow in enumerate(flows):
        for i, message in enumerate(flow):
            at[message.type].append((f, i))
    commands = {t for t, places in at.items() if _is_command(t, places, flows)}
    reply_to = {t: c for t in at if t not in commands
                for c in [_answered(t, at[t], flows, commands)] if c}
    starters = {t for t, places in at.items()
                if sum(1 for _, i in places if i == 0) >= MOSTLY * len(places)}
    kind: dict[str, str] = {t: "command" for t in commands}
    kind.update({t: "event" for t in reply_to})
    step_of: dict[str, str] = {t: t for t in commands}
    step_of.update(reply_to)
    status: dict[str, str] = {}
    compensates: dict[str, str] = {}

    undo_commands = {t for t in commands if w.is_undo(t)}
    for t in sorted(at):
        if reply_to.get(t) in undo_commands:
            status[t] = "failed" if w.reports_failure(t) else "compensated"
        elif w.is_undo(t):
            target = _undone_step(t, at[t], flows, step_of, starters)
            if target is None:
                out.ambiguities.append(
                    f"{t} reads like an undo but follows no step it could undo; "
                    "it is left without a status")
                continue
            compensates[t] = target
            status[t] = "compensating" if t in commands else "compensated"
            if target not in commands:
                step_of.setdefault(target, target)  # a choreographed step: the event is the step
        elif w.reports_failure(t):
            first = sum(1 for f, i in at[t] if not any(_failed(s) for s in flows[f][:i]))
            if first >= 0.5 * len(at[t]):
                status[t] = "failed"
            else:
                out.ambiguities.append(
                    f"{t} reports a failure but mostly after an earlier one; "
                    "it is left without a status (the first failure marks the saga)")
    troubled = {f for f, flow in enumerate(flows)
                if any(_failed(s) or w.is_undo(s.type) for s in flow)}
    for t in _completions(at, flows, troubled):
        status.setdefault(t, "completed")
    for t in sorted(at):
        meaning = TypeMeaning(t, kind.get(t, ""), step_of.get(t, ""), status.get(t, ""),
                              compensates.get(t, ""))
        if meaning != TypeMeaning(t):
            out.types[t] = meaning
    return out


def _is_command(t: str, places: Sequence[tuple[int, int]], flows: Sequence[Sequence[Step]]) -> bool:
    """Named like an imperative and answered on another topic (a command and its reply)."""
    if not w.starts_with_verb(t):
        return False
    followed = [flows[f][i + 1] for f, i in places if i + 1 < len(flows[f])]
    topic = flows[places[0][0]][places[0][1]].topic
    return bool(followed) and sum(1 for s in followed if s.topic != topic) >= MOSTLY * len(followed)


def _answered(t: str, places: Sequence[tuple[int, int]], flows: Sequence[Sequence[Step]],
              commands: set[str]) -> str:
    """The command ``t`` answers (the one right before it, nearly always), or ""."""
    before = Counter(flows[f][i - 1].type for f, i in places if i > 0)
    if not before:
        return ""
    command, count = before.most_common(1)[0]
    return command if command in commands and count >= MOSTLY * len(places) else ""


def _undone_step(t: str, places: Sequence[tuple[int, int]], flows: Sequence[Sequence[Step]],
                 step_of: Mapping[str, str], starters: set[str]) -> str | None:
    """The step an undo undoes: an earlier step of its flows about the same thing."""
    about = w.subject(t)
    votes: Counter[str] = Counter()
    for f, i in places:
        seen: set[str] = set()
        for earlier in reversed(flows[f][:i]):
            target = step_of.get(earlier.type, earlier.type)
            if (target in seen or earlier.type in starters or w.is_undo(earlier.type)
                    or _failed(earlier) or not (w.subject(earlier.type) & about)):
                continue
            seen.add(target)
            votes[target] += 1
    if not votes:
        return None
    target, count = votes.most_common(1)[0]
    return target if count >= 0.5 * len(places) else None


def _completions(at: Mapping[str, Sequence[tuple[int, int]]], flows: Sequence[Sequence[Step]],
                 troubled: set[int]) -> list[str]:
    """Types that end the flows that went well: seen only there, and nothing but side
    effects (types also seen in troubled flows) after them."""
    good_only = {t for t, places in at.items() if not any(f in troubled for f, _ in places)}
    if not good_only:
        return []
    out = []
    for t in sorted(good_only):
        places = at[t]
        last = sum(1 for f, i in places
                   if len(flows[f]) > 1 and not any(s.type in good_only for s in flows[f][i + 1:]))
        if last >= MOSTLY * len(places):
            out.append(t)
    return out
