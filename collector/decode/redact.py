"""Redaction rules, applied to payloads before they are stored.

A rule replaces values either by JSON field path (a JSON pointer where ``*`` matches any key
or index) or by value pattern (a regex over every string value, and over the text of payloads
that are not JSON). Rules apply to topics their ``topic`` regex fully matches (all if empty).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sagascope.collector.decode.correlate import RuleError, parse_pointer
from sagascope.settings import RedactionRule


@dataclass(frozen=True)
class _CompiledRedaction:
    path: tuple[str, ...] | None
    pattern: re.Pattern[str] | None
    replacement: str
    topic: re.Pattern[str] | None


def _redact_path(node: Any, tokens: Sequence[str], replacement: str) -> bool:
    """Replace the value(s) at ``tokens`` in place; True if anything was replaced."""
    if not tokens:
        return False
    head = tokens[0]
    if type(node) is dict and head != "*" and head not in node:
        return False  # the common case: the field is not there
    rest = tokens[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else ([head] if head in node else [])
    elif isinstance(node, list):
        if head == "*":
            keys = list(range(len(node)))
        elif head.isdigit() and int(head) < len(node):
            keys = [int(head)]
        else:
            keys = []
    else:
        return False
    changed = False
    for key in keys:
        if rest:
            changed |= _redact_path(node[key], rest, replacement)
        else:
            node[key] = replacement
            changed = True
    return changed


def _redact_pattern(node: Any, pattern: re.Pattern[str], replacement: str) -> tuple[Any, bool]:
    """Replace pattern matches in every string value; returns the (new) node and whether it changed."""
    if isinstance(node, str):
        new, n = pattern.subn(replacement, node)
        return new, n > 0
    changed = False
    if isinstance(node, dict):
        for key, value in node.items():
            new, c = _redact_pattern(value, pattern, replacement)
            if c:
                node[key] = new
                changed = True
    elif isinstance(node, list):
        for i, value in enumerate(node):
            new, c = _redact_pattern(value, pattern, replacement)
            if c:
                node[i] = new
                changed = True
    return node, changed


class Redactor:
    """The configured redaction rules, compiled once."""

    def __init__(self, rules: Sequence[RedactionRule] = ()) -> None:
        compiled = []
        for i, rule in enumerate(rules):
            where = f"collector.redaction[{i}]"
            if bool(rule.path) == bool(rule.pattern):
                raise RuleError(f"{where}: set exactly one of 'path' or 'pattern'")
            path = None
            if rule.path:
                try:
                    path = parse_pointer(rule.path)
                except RuleError as exc:
                    raise RuleError(f"{where}.path: {exc}") from exc
            pattern = _compile(rule.pattern, f"{where}.pattern") if rule.pattern else None
            topic = _compile(rule.topic, f"{where}.topic") if rule.topic else None
            compiled.append(_CompiledRedaction(path, pattern, rule.replacement, topic))
        self._rules = tuple(compiled)
        self._by_topic: dict[str, tuple[_CompiledRedaction, ...]] = {}

    def applies_to(self, topic: str) -> bool:
        return bool(self._rules_for(topic))

    def _rules_for(self, topic: str) -> tuple[_CompiledRedaction, ...]:
        try:
            return self._by_topic[topic]
        except KeyError:
            found = tuple(r for r in self._rules if r.topic is None or r.topic.fullmatch(topic))
            self._by_topic[topic] = found
            return found

    def redact_document(self, topic: str, document: Any) -> tuple[Any, bool]:
        """Redact a parsed JSON document in place; returns it and whether anything changed."""
        changed = False
        for rule in self._rules_for(topic):
            if rule.path is not None:
                if rule.path == ():
                    document, changed = rule.replacement, True
                else:
                    changed |= _redact_path(document, rule.path, rule.replacement)
            elif rule.pattern is not None:
                document, c = _redact_pattern(document, rule.pattern, rule.replacement)
                changed |= c
        return document, changed

    def redact_text(self, topic: str, text: str) -> str:
        """Apply the value patterns to text that is not (complete) JSON."""
        for rule in self._rules_for(topic):
            if rule.pattern is not None:
                text = rule.pattern.sub(rule.replacement, text)
        return text


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise RuleError(f"{where}: invalid regex {pattern!r}: {exc}") from exc
