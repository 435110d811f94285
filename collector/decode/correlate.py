"""Correlation rules: tie messages without the contract headers to their saga, and say what
they mean (type, kind, step, saga outcome, the step they undo).

A rule applies to the topics its ``topic`` regex fully matches. Each source field of the rule
is a JSON pointer (``/order/id``) into the JSON payload, a regex (``re:order-(\\d+)``) over the
payload text whose first group (or whole match) is the value, a header (``header:NAME``), the
Kafka ``key`` or the ``topic`` name. Rules are compiled once (``Correlator``); per record a
rule costs one call per source it sets and a few dictionary look-ups.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sagascope.collector.exceptions import RuleError
from sagascope.instrumentation.contract import SAGA_STATUSES, MalformedHeader, parse_time
from sagascope.settings import CorrelationRule

#: The source fields a rule can set, in the order they are looked up.
RULE_FIELDS: tuple[str, ...] = (
    "saga_id", "saga_type", "type", "event_time", "source", "kind", "step", "compensates"
)

#: Extracts a value from (parsed JSON or None, payload text, headers, key, topic); "" when
#: nothing is found.
Extractor = Callable[[Any, str, Mapping[str, str], str, str], str]

_MISSING = object()
_NO_HEADERS: Mapping[str, str] = {}


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """RFC 6901 JSON pointer to its reference tokens (``/a~1b/0`` -> ``("a/b", "0")``)."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise RuleError(f"JSON pointer must start with '/': {pointer!r}")
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def resolve_pointer(document: Any, tokens: Sequence[str]) -> Any:
    """The value at ``tokens`` in ``document``, or ``_MISSING``."""
    node = document
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                return _MISSING
            node = node[token]
        elif isinstance(node, list):
            if not token.isdigit() or int(token) >= len(node):
                return _MISSING
            node = node[int(token)]
        else:
            return _MISSING
    return node


def _scalar_text(value: Any) -> str:
    if value is _MISSING or value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: The spellings a rule source can take, for error messages.
SOURCE_FORMS = "a JSON pointer (/a/b), re:REGEX, header:NAME, key or topic"


def compile_extractor(spec: str, where: str) -> Extractor | None:
    """A rule source as an extractor; None for an empty spec.

    Raises:
        RuleError: naming ``where`` when the spec is none of ``SOURCE_FORMS``.
    """
    if not spec:
        return None
    if spec.startswith("re:"):
        try:
            pattern = re.compile(spec[3:])
        except re.error as exc:
            raise RuleError(f"{where}: invalid regex {spec[3:]!r}: {exc}") from exc

        def by_regex(_document: Any, text: str, _headers: Mapping[str, str], _key: str,
                     _topic: str) -> str:
            m = pattern.search(text)
            if m is None:
                return ""
            return m.group(1) if pattern.groups else m.group(0)

        return by_regex
    if spec.startswith("header:"):
        name = spec[len("header:"):]
        if not name:
            raise RuleError(f"{where}: 'header:' needs a header name, e.g. header:x-correlation-id")

        def by_header(_document: Any, _text: str, headers: Mapping[str, str], _key: str,
                      _topic: str) -> str:
            return headers.get(name, "")

        return by_header
    if spec == "key":
        return _by_key
    if spec == "topic":
        return _by_topic
    if not spec.startswith("/"):
        raise RuleError(f"{where}: {spec!r} must be {SOURCE_FORMS}")
    tokens = parse_pointer(spec)

    def by_pointer(document: Any, _text: str, _headers: Mapping[str, str], _key: str,
                   _topic: str) -> str:
        return _scalar_text(resolve_pointer(document, tokens))

    return by_pointer


def _by_key(_document: Any, _text: str, _headers: Mapping[str, str], key: str, _topic: str) -> str:
    return key


def _by_topic(_document: Any, _text: str, _headers: Mapping[str, str], _key: str, topic: str) -> str:
    return topic


def parse_event_time(value: str) -> datetime | None:
    """RFC 3339 text, or epoch seconds / milliseconds / microseconds as a number."""
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        try:
            return parse_time(text)
        except MalformedHeader:
            return None
    # Pick the unit by magnitude: seconds until year ~5138, then ms, then µs.
    if abs(number) >= 1e14:
        number /= 1e6
    elif abs(number) >= 1e11:
        number /= 1e3
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


#: The meaning a ``types`` entry gives: (kind, step, saga status, compensates).
Meaning = tuple[str, str, str, str]

_KINDS = frozenset({"command", "event"})


@dataclass(frozen=True)
class CompiledRule:
    rule: CorrelationRule
    topic: re.Pattern[str]
    extractors: tuple[tuple[str, Extractor], ...]
    label: str
    #: type -> its meaning, from ``types``.
    meanings: Mapping[str, Meaning]
    #: the ``outcome`` source, and its value -> saga status, from ``outcomes``.
    outcome: Extractor | None
    outcomes: Mapping[str, str]

    def extract(
        self, document: Any, text: str, headers: Mapping[str, str] = _NO_HEADERS, key: str = "",
        topic: str = "",
    ) -> dict[str, str]:
        """The non-empty fields this rule finds in a record (any of ``RULE_FIELDS``)."""
        found: dict[str, str] = {}
        for name, extractor in self.extractors:
            value = extractor(document, text, headers, key, topic)
            if value:
                found[name] = value
        rule = self.rule
        if rule.saga_type_value and "saga_type" not in found:
            found["saga_type"] = rule.saga_type_value
        if rule.type_value and "type" not in found:
            found["type"] = rule.type_value
        if self.outcome is not None and "saga_status" not in found:
            status = self.outcomes.get(self.outcome(document, text, headers, key, topic), "")
            if status:
                found["saga_status"] = status
        if self.meanings:
            meaning = self.meanings.get(found.get("type", ""))
            if meaning is not None:
                for name, value in zip(_MEANING_FIELDS, meaning, strict=True):
                    if value and name not in found:
                        found[name] = value
        return found


_MEANING_FIELDS = ("kind", "step", "saga_status", "compensates")


def _check_status(status: str, where: str) -> str:
    if status and status not in SAGA_STATUSES:
        raise RuleError(
            f"{where} must be one of {', '.join(sorted(SAGA_STATUSES))}, got {status!r}"
        )
    return status


def _meanings(rule: CorrelationRule, where: str) -> dict[str, Meaning]:
    meanings: dict[str, Meaning] = {}
    for j, entry in enumerate(rule.types):
        at = f"{where}.types[{j}]"
        if not entry.type:
            raise RuleError(f"{at}.type is required (the message type this entry describes)")
        if entry.type in meanings:
            raise RuleError(f"{at}.type {entry.type!r} is described twice in {where}.types")
        if entry.kind and entry.kind not in _KINDS:
            raise RuleError(f"{at}.kind must be 'command' or 'event', got {entry.kind!r}")
        _check_status(entry.status, f"{at}.status")
        meanings[entry.type] = (entry.kind, entry.step, entry.status, entry.compensates)
    return meanings


def _outcomes(rule: CorrelationRule, where: str) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    for j, entry in enumerate(rule.outcomes):
        at = f"{where}.outcomes[{j}]"
        if not entry.status:
            raise RuleError(f"{at}.status is required")
        outcomes[entry.value] = _check_status(entry.status, f"{at}.status")
    if outcomes and not rule.outcome:
        raise RuleError(f"{where}.outcomes needs {where}.outcome (where a message says its outcome)")
    if rule.outcome and not outcomes:
        raise RuleError(f"{where}.outcome needs {where}.outcomes (which values mark which status)")
    return outcomes


def compile_rule(rule: CorrelationRule, where: str) -> CompiledRule:
    """One rule, checked and compiled; errors name the setting (``where``).

    Raises:
        RuleError: an invalid topic regex, source, status or kind.
    """
    if not rule.topic:
        raise RuleError(f"{where}.topic is required (a regex over topic names)")
    try:
        topic = re.compile(rule.topic)
    except re.error as exc:
        raise RuleError(f"{where}.topic: invalid regex {rule.topic!r}: {exc}") from exc
    extractors = []
    for name in RULE_FIELDS:
        spec = getattr(rule, name)
        extractor = compile_extractor(spec, f"{where}.{name}")
        if extractor is not None:
            extractors.append((name, extractor))
    return CompiledRule(
        rule, topic, tuple(extractors), f"rule:{rule.topic}", _meanings(rule, where),
        compile_extractor(rule.outcome, f"{where}.outcome"), _outcomes(rule, where),
    )


class Correlator:
    """The configured correlation rules, compiled once; the first rule matching a topic wins."""

    def __init__(self, rules: Sequence[CorrelationRule] = ()) -> None:
        self._rules = tuple(
            compile_rule(rule, f"collector.correlation[{i}]") for i, rule in enumerate(rules)
        )
        self._by_topic: dict[str, CompiledRule | None] = {}

    def rule_for(self, topic: str) -> CompiledRule | None:
        """The rule for a topic (cached: topics are few, records many)."""
        try:
            return self._by_topic[topic]
        except KeyError:
            found = next((r for r in self._rules if r.topic.fullmatch(topic)), None)
            self._by_topic[topic] = found
            return found
