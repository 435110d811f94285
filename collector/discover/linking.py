"""Which field ties records into flows: candidate id spaces, decoys rejected, one per topic.

An id space is a set of (topic, source) whose values are shared: ``/orderId`` on one topic,
``header:x-correlation-id`` on another, the key on a third. Each is judged by the flows it
would form. A per-request id forms request/reply pairs inside the flows (finer, pair-like);
a customer or tenant id forms groups that hold several flows (coarser): both lose to the id
in between. A topic no id space reaches (metrics) stays unattached, and so does a change
stream (CDC envelopes, outbox rows), whose ids would tie copies of the flows' own messages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sagascope.collector.discover.profile import SourceValues, TopicProfile

#: A source must be on this share of a topic's records to be its saga id.
MIN_COVERAGE = 0.8
#: Share of the smaller value set two sources must share to be one id space.
MIN_OVERLAP = 0.5
#: A grouping whose groups are nearly all pairs is request/reply, not a flow.
PAIR_LIKE_SHARE = 0.8
#: A grouping refines another when this share of its groups sits inside one group of the
#: other, and the other's groups hold this many of its groups on average.
NESTED_SHARE = 0.95
NESTED_RATIO = 1.3

#: (topic, index of the record in its topic's profile)
RecordRef = tuple[str, int]


def _source_rank(spec: str) -> int:
    """Payload fields before headers before the key, when they hold the same values."""
    return 0 if spec.startswith("/") else 1 if spec.startswith("header:") else 2


@dataclass
class IdSpace:
    """A candidate saga id: the source per topic, and the flows it forms."""

    sources: dict[str, str]
    groups: dict[str, list[RecordRef]] = field(default_factory=dict)
    #: Why it was set aside, if it was.
    rejected: str = ""

    @property
    def covered(self) -> int:
        return sum(len(g) for g in self.groups.values())

    @property
    def pair_like(self) -> bool:
        small = sum(1 for g in self.groups.values() if len(g) <= 2)
        return bool(self.groups) and small / len(self.groups) >= PAIR_LIKE_SHARE

    @property
    def singleton_like(self) -> bool:
        alone = sum(1 for g in self.groups.values() if len(g) == 1)
        return not self.groups or alone / len(self.groups) >= 0.5

    def describe(self) -> str:
        return ", ".join(f"{topic} {spec}" for topic, spec in sorted(self.sources.items()))


def _eligible(profiles: Mapping[str, TopicProfile]) -> dict[tuple[str, str], SourceValues]:
    nodes = {}
    for topic, profile in profiles.items():
        if profile.change_stream:
            continue
        for spec, values in profile.sources.items():
            if values.coverage >= MIN_COVERAGE and values.looks_like_ids():
                nodes[(topic, spec)] = values
    return nodes


def _components(nodes: Mapping[tuple[str, str], SourceValues]) -> list[list[tuple[str, str]]]:
    """Nodes joined where sources of two topics share most of their values."""
    distinct = {node: values.distinct() for node, values in nodes.items()}
    holders: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for node, values in distinct.items():
        for value in values:
            holders[value].append(node)
    shared: dict[tuple[tuple[str, str], tuple[str, str]], int] = defaultdict(int)
    for held_by in holders.values():
        if len(held_by) > 12:  # a value on that many sources is a constant, not an id
            continue
        for i, a in enumerate(held_by):
            for b in held_by[i + 1:]:
                if a[0] != b[0]:
                    shared[(a, b) if a < b else (b, a)] += 1
    parent = {node: node for node in nodes}

    def root(node: tuple[str, str]) -> tuple[str, str]:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for (a, b), count in shared.items():
        if count >= 2 and count / min(len(distinct[a]), len(distinct[b])) >= MIN_OVERLAP:
            parent[root(a)] = root(b)
    members: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for node in nodes:
        members[root(node)].append(node)
    return [sorted(m) for m in members.values() if len({t for t, _ in m}) >= 2]


def _space(sources: Mapping[str, str], profiles: Mapping[str, TopicProfile]) -> IdSpace:
    space = IdSpace(dict(sources))
    for topic, spec in sorted(sources.items()):
        for i, value in enumerate(profiles[topic].sources[spec].values):
            if value:
                space.groups.setdefault(value, []).append((topic, i))
    return space


def _pick_per_topic(
    component: Sequence[tuple[str, str]], nodes: Mapping[tuple[str, str], SourceValues]
) -> dict[str, str]:
    """One source per topic of a component: the one sharing most values with other topics."""
    others: dict[str, set[str]] = defaultdict(set)
    for topic, spec in component:
        others[topic] |= nodes[(topic, spec)].distinct()
    chosen: dict[str, str] = {}
    for topic in sorted({t for t, _ in component}):
        elsewhere: set[str] = set()
        for other, values in others.items():
            if other != topic:
                elsewhere |= values
        specs = [s for t, s in component if t == topic]
        chosen[topic] = max(specs, key=lambda s: (
            len(nodes[(topic, s)].distinct() & elsewhere), nodes[(topic, s)].coverage,
            -_source_rank(s), s,
        ))
    return chosen


def _refines(fine: IdSpace, coarse: IdSpace) -> bool:
    """Every group of ``fine`` (on the records both cover) lies inside one group of ``coarse``,
    which holds several of them."""
    coarse_of: dict[RecordRef, str] = {}
    for value, refs in coarse.groups.items():
        for ref in refs:
            coarse_of[ref] = value
    inside = total = 0
    fine_values: set[str] = set()
    coarse_values: set[str] = set()
    for value, refs in fine.groups.items():
        landed = {coarse_of[ref] for ref in refs if ref in coarse_of}
        if not landed:
            continue
        total += 1
        fine_values.add(value)
        coarse_values |= landed
        inside += len(landed) == 1
    if total < 2 or inside / total < NESTED_SHARE:
        return False
    return len(fine_values) / max(len(coarse_values), 1) >= NESTED_RATIO


def _judge(spaces: list[IdSpace]) -> None:
    """Set aside singletons, pair-like decoys inside real flows, and coarse groupings."""
    for s in spaces:
        if s.singleton_like:
            s.rejected = "its values are unique per record (a message id)"
    live = [s for s in spaces if not s.rejected]
    for s in live:
        if s.pair_like and any(o is not s and not o.pair_like and _refines(s, o) for o in live):
            s.rejected = "it pairs requests with replies inside longer flows (a request id)"
    live = [s for s in live if not s.rejected]
    for s in live:
        finer = next((o for o in live if o is not s and not o.pair_like and _refines(o, s)), None)
        if finer is not None:
            s.rejected = (f"each of its groups holds several flows of {finer.describe()} "
                          "(a customer or tenant id)")


def find_id_spaces(profiles: Mapping[str, TopicProfile]) -> tuple[list[IdSpace], list[IdSpace]]:
    """(the chosen id spaces, with their topics disjoint; the candidates set aside).

    Ids shared across topics win; only when none links two topics does a topic group its
    records by a field of its own (an event log replayed to one topic).
    """
    nodes = _eligible(profiles)
    spaces = [_space(_pick_per_topic(c, nodes), profiles) for c in _components(nodes)]
    chosen, rejected = _choose(spaces)
    if not chosen:
        singles = [_space({topic: spec}, profiles) for topic, spec in sorted(nodes)]
        chosen, rejected = _choose(singles)
    return chosen, rejected


def _choose(spaces: list[IdSpace]) -> tuple[list[IdSpace], list[IdSpace]]:
    _judge(spaces)
    live = sorted((s for s in spaces if not s.rejected),
                  key=lambda s: (-s.covered, -len(s.groups), s.describe()))
    chosen: list[IdSpace] = []
    claimed: set[str] = set()
    for s in live:
        if s.pair_like and any(not o.pair_like for o in live):
            s.rejected = "its groups are nearly all pairs"
            continue
        if claimed & set(s.sources):
            s.rejected = "its topics are tied by a better id already"
            continue
        chosen.append(s)
        claimed |= set(s.sources)
    return chosen, [s for s in spaces if s.rejected]
