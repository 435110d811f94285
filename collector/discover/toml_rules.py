"""Proposed rules as ``sagascope.toml`` text, and adding them to a file without touching the rest."""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

from sagascope.collector.decode.correlate import Correlator
from sagascope.collector.discover.proposal import Proposal, TopicFinding
from sagascope.collector.exceptions import DiscoverError
from sagascope.settings import CorrelationRule, load_settings

#: Comments discovery writes start so; ``--force`` removes them with the rules they describe.
COMMENT = "# sagascope discover:"
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _s(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


def render_rule(rule: CorrelationRule, finding: TopicFinding | None = None) -> str:
    lines = []
    if finding is not None:
        share = finding.correlated / finding.records if finding.records else 0.0
        lines.append(f"{COMMENT} {finding.topic}: {finding.correlated}/{finding.records} "
                     f"sampled records ({share:.0%}) tied to a saga by {finding.saga_id}")
        if finding.event_time is not None:
            lines.append(f"{COMMENT} event time {finding.event_time.spec} "
                         f"({finding.event_time.unit})")
    lines.append("[[collector.correlation]]")
    for name in ("topic", "saga_id", "type", "type_value", "event_time", "source", "saga_type",
                 "saga_type_value", "kind", "step", "compensates", "outcome"):
        value = getattr(rule, name)
        if value:
            lines.append(f"{name} = {_s(value)}")
    if not rule.key_fallback:
        lines.append("key_fallback = false")
    if rule.outcomes:
        entries = ", ".join(f"{{ value = {_s(o.value)}, status = {_s(o.status)} }}"
                            for o in rule.outcomes)
        lines.append(f"outcomes = [{entries}]")
    if rule.types:
        lines.append("types = [")
        for m in rule.types:
            parts = [f"type = {_s(m.type)}"] + [
                f"{name} = {_s(getattr(m, name))}"
                for name in ("kind", "step", "status", "compensates") if getattr(m, name)
            ]
            lines.append(f"  {{ {', '.join(parts)} }},")
        lines.append("]")
    return "\n".join(lines) + "\n"


def render_rules(proposal: Proposal) -> str:
    """Every proposed rule as ``[[collector.correlation]]`` tables, with what it achieves."""
    by_pattern = {re.escape(f.topic): f for f in proposal.topics}
    return "\n".join(render_rule(rule, by_pattern.get(rule.topic)) for rule in proposal.rules)


def _rule_blocks(lines: Sequence[str]) -> list[tuple[int, int]]:
    """(first line, end line) of each ``[[collector.correlation]]`` table with its sub-tables
    and the discovery comments right above it."""
    blocks: list[tuple[int, int]] = []
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if m is None:
            continue
        name = m.group(1).replace(" ", "")
        if blocks and blocks[-1][1] == -1 and not name.startswith("collector.correlation."):
            blocks[-1] = (blocks[-1][0], i)
        if name == "collector.correlation" and line.lstrip().startswith("[["):
            if blocks and blocks[-1][1] == -1:
                blocks[-1] = (blocks[-1][0], i)
            start = i
            while start > 0 and lines[start - 1].startswith(COMMENT):
                start -= 1
            blocks.append((start, -1))
    return [(a, len(lines) if b == -1 else b) for a, b in blocks]


def write_rules(path: Path, proposal: Proposal, *, force: bool = False) -> list[str]:
    """Add the proposed rules to the TOML file at ``path`` (created if missing), keeping the
    rest of it; returns the topics whose old rules ``force`` replaced.

    Raises:
        DiscoverError: a configured rule already covers a proposed topic (without ``force``),
            or the file would not load afterwards.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        existing = tomllib.loads(text).get("collector", {}).get("correlation", [])
    except tomllib.TOMLDecodeError as exc:
        raise DiscoverError(f"{path} is not valid TOML: {exc}") from exc
    covered = [f.topic for f in proposal.topics if not f.unattached]
    clashes: dict[int, list[str]] = {}
    for i, rule in enumerate(existing):
        pattern = rule.get("topic", "") if isinstance(rule, dict) else ""
        try:
            hit = [t for t in covered if re.fullmatch(pattern, t)]
        except re.error:
            continue
        if hit:
            clashes[i] = hit
    replaced = sorted({t for hit in clashes.values() for t in hit})
    if clashes and not force:
        raise DiscoverError(
            f"{path} already has rules for {', '.join(replaced)} (collector.correlation"
            f"[{', '.join(map(str, clashes))}]); run with --force to replace them"
        )
    lines = text.splitlines(keepends=True)
    if clashes:
        blocks = _rule_blocks([line.rstrip("\n") for line in lines])
        if len(blocks) != len(existing):
            raise DiscoverError(
                f"{path} writes collector.correlation in a form --force cannot edit; "
                "remove the rules for those topics by hand")
        for i in sorted(clashes, reverse=True):
            start, end = blocks[i]
            del lines[start:end]
    new_text = "".join(lines)
    if new_text and not new_text.endswith("\n"):
        new_text += "\n"
    new_text += ("\n" if new_text else "") + render_rules(proposal)
    _replace_checked(path, new_text)
    return replaced


def _replace_checked(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` only if it loads as settings with valid rules."""
    fd, tmp = tempfile.mkstemp(prefix=".sagascope-", suffix=".toml", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        settings = load_settings(tmp, environ={})
        Correlator(settings.collector.correlation)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
