"""Correlation rules: tie messages without the contract headers to their saga.

A rule applies to the topics its ``topic`` regex fully matches. Each field of the rule is a
JSON pointer (``/order/id``) into the JSON payload or a regex (``re:order-(\\d+)``) over the
payload text, whose first group (or whole match) is the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sagascope.collector.exceptions import RuleError
from sagascope.instrumentation.contract import MalformedHeader, parse_time

from sagascope.settings import CorrelationRule

#: The fields a rule can extract, in the order they are looked up.
RULE_FIELDS: tuple[str, ...] = ("saga_id", "saga_type", "type", "event_time", "source")

#: Extracts a value from (parsed JSON or None, payload text); "" when nothing is found.
Extractor = Callable[[Any, str], str]

_MISSING = object()


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


def compile_extractor(spec: str, where: str) -> Extractor | None:
    """A JSON pointer or ``re:`` regex as an extractor; None for an empty spec."""
    if not spec:
        return None
    if spec.startswith("re:"):
        try:
            pattern = re.compile(spec[3:])
        except re.error as exc:
            raise RuleError(f"{where}: invalid regex {spec[3:]!r}: {exc}") from exc

        def by_regex(_document: Any, text: str) -> str:
            m = pattern.search(text)
            if m is None:
                return ""
            return m.group(1) if pattern.groups else m.group(0)

        return by_regex
    try:
        tokens = parse_pointer(spec)
    except RuleError as exc:
        raise RuleError(f"{where}: {exc} (or prefix a regex with 're:')") from exc

    def by_pointer(document: Any, _text: str) -> str:
        return _scalar_text(resolve_pointer(document, tokens))

    return by_pointer


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


@dataclass(frozen=True)
class CompiledRule:
    rule: CorrelationRule
    topic: re.Pattern[str]
    extractors: tuple[tuple[str, Extractor], ...]
    label: str

    def extract(self, document: Any, text: str) -> dict[str, str]:
        """The non-empty fields this rule finds in the payload."""
        found: dict[str, str] = {}
        for name, extractor in self.extractors:
            value = extractor(document, text)
            if value:
                found[name] = value
        if self.rule.saga_type_value and "saga_type" not in found:
            found["saga_type"] = self.rule.saga_type_value
        return found


class Correlator:
    """The configured correlation rules, compiled once; the first rule matching a topic wins."""

    def __init__(self, rules: Sequence[CorrelationRule] = ()) -> None:
        compiled: list[CompiledRule] = []
        for i, rule in enumerate(rules):
            where = f"collector.correlation[{i}]"
            if not rule.topic:
                raise RuleError(f"{where}.topic is required (a regex over topic names)")
            try:
                topic = re.compile(rule.topic)
            except re.error as exc:
                raise RuleError(f"{where}.topic: invalid regex {rule.topic!r}: {exc}") from exc
            extractors = []
            for name in RULE_FIELDS:
                extractor = compile_extractor(getattr(rule, name), f"{where}.{name}")
                if extractor is not None:
                    extractors.append((name, extractor))
            compiled.append(CompiledRule(rule, topic, tuple(extractors), f"rule:{rule.topic}"))
        self._rules = tuple(compiled)
        self._by_topic: dict[str, CompiledRule | None] = {}

    def rule_for(self, topic: str) -> CompiledRule | None:
        """The rule for a topic (cached: topics are few, records many)."""
        try:
            return self._by_topic[topic]
        except KeyError:
            found = next((r for r in self._rules if r.topic.fullmatch(topic)), None)
            self._by_topic[topic] = found
            return found
