"""A layered (Sugiyama) layout of a small directed graph, top to bottom, computed on the server:
the process map is drawn as SVG without Graphviz's WebAssembly in the browser (a Graphviz chart
cost a first visit +0.17 s for three nodes, more for a real map; bench_browser_parts.py).

The classic steps, each kept small: break cycles (a depth-first search from the first node,
heaviest links first, so the main flow points down and the loops point back up), give each node
a layer (longest path), put a virtual node wherever a link crosses a layer (every link crosses
at least one: the layers between the nodes' hold the links' labels, as Graphviz's ``dot`` does),
order each layer to cross few links (barycentres, the best of several sweeps), then place each
layer as close to its neighbours as its order allows (isotonic regression), and route every
link through its virtual nodes. Self-loops are drawn beside their node.

Pure: boxes and links in, positions and routes out, in pixels.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

#: Horizontal room between neighbours in a layer, and between layers.
GAP_X = 26.0
GAP_Y = 18.0
MARGIN = 12.0
#: A link's label starts this far right of its line.
LABEL_OFFSET = 5.0
#: A self-loop bulges this far right of its node.
LOOP_PX = 24.0
#: Crossing-reduction sweeps (each down then up).
SWEEPS = 8
#: Placement passes (each down then up).
PLACEMENT_PASSES = 12


@dataclass(frozen=True)
class Box:
    """A node to place: its key and size in pixels."""

    key: str
    width: float
    height: float


@dataclass(frozen=True)
class Link:
    """A link to route; ``weight`` keeps heavy links straight and pointing down; its label's
    size (width, height; none by default) is kept free beside the link's line."""

    source: str
    target: str
    weight: float = 1.0
    label_size: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Route:
    """A link's line from its source to its target (``back``: drawn upwards, a loop back;
    ``self_loop``: from its node back to it), and where its label starts (text left-aligned,
    the point its baseline's middle)."""

    link: Link
    points: list[tuple[float, float]]
    label_at: tuple[float, float]
    back: bool = False
    self_loop: bool = False


@dataclass(frozen=True)
class Layout:
    """Each box's centre (x, y) by key, each link's route, and the drawing's size."""

    boxes: dict[str, tuple[float, float]]
    routes: list[Route]
    size: tuple[float, float]


@dataclass
class _Slot:
    """A node of the layered graph: a box, or a virtual node a link passes through. ``left``
    and ``right``: the room it takes either side of its x."""

    key: str
    layer: int
    left: float
    right: float
    height: float
    up: list[tuple[_Slot, float]] = field(default_factory=list)
    down: list[tuple[_Slot, float]] = field(default_factory=list)
    x: float = 0.0
    y: float = 0.0
    order: float = 0.0


def layered(boxes: Sequence[Box], links: Sequence[Link], *, first: str = "",
            last: str = "") -> Layout:
    """Lay ``boxes`` out in layers, top to bottom, and route ``links`` between them.

    ``first`` (when given) starts the cycle-breaking search and so sits on top; ``last`` is
    put on the bottom layer.
    """
    by_key = {b.key: b for b in boxes}
    plain = [k for k in links if k.source != k.target and k.source in by_key
             and k.target in by_key]
    loops = [k for k in links if k.source == k.target and k.source in by_key]
    back = _back_links(list(by_key), plain, first)
    downward = [(k.target, k.source) if id(k) in back else (k.source, k.target) for k in plain]
    rank = _ranks(list(by_key), downward, first, last)
    loop_room: dict[str, float] = defaultdict(float)
    for loop in loops:
        loop_room[loop.source] = max(loop_room[loop.source],
                                     LOOP_PX + LABEL_OFFSET + loop.label_size[0])
    slots = {key: _Slot(key, 2 * rank[key], box.width / 2, box.width / 2 + loop_room[key],
                        box.height) for key, box in by_key.items()}
    chains = [_chain(slots, link, ends, i) for i, (link, ends) in
              enumerate(zip(plain, downward, strict=True))]
    layers = _layers(slots, chains)
    _order(layers)
    _place(layers)
    heights = _layer_heights(layers)
    tops = _tops(heights)
    for depth, layer in enumerate(layers):
        for slot in layer:
            slot.y = tops[depth] + heights[depth] / 2
    shift = MARGIN - min((s.x - s.left for layer in layers for s in layer), default=0.0)
    for layer in layers:
        for slot in layer:
            slot.x += shift
    routes = [_route(link, chain, id(link) in back, slots)
              for link, chain in zip(plain, chains, strict=True)]
    routes += [_loop_route(loop, slots[loop.source]) for loop in loops]
    width = max((s.x + s.right for layer in layers for s in layer), default=0.0) + MARGIN
    height = tops[-1] + heights[-1] + MARGIN if layers else 2 * MARGIN
    centres = {key: (slots[key].x, slots[key].y) for key in by_key}
    return Layout(centres, routes, (width, height))


def _back_links(keys: list[str], links: list[Link], first: str) -> set[int]:
    """The links (by ``id``) that close a cycle in a depth-first search from ``first`` (then
    from every node not reached, in the order given), heaviest links followed first."""
    out: dict[str, list[Link]] = defaultdict(list)
    for link in sorted(links, key=lambda k: -k.weight):
        out[link.source].append(link)
    state: dict[str, int] = {}  # 1: on the search's path, 2: done
    back: set[int] = set()
    for root in ([first] if first in keys else []) + keys:
        if root in state:
            continue
        stack = [(root, iter(out[root]))]
        state[root] = 1
        while stack:
            node, pending = stack[-1]
            following = next(pending, None)
            if following is None:
                state[node] = 2
                stack.pop()
            elif state.get(following.target) == 1:
                back.add(id(following))
            elif following.target not in state:
                state[following.target] = 1
                stack.append((following.target, iter(out[following.target])))
    return back


def _ranks(keys: list[str], downward: list[tuple[str, str]], first: str,
           last: str) -> dict[str, int]:
    """Longest path from the sources of the (now acyclic) graph; ``first`` alone on top,
    ``last`` on the bottom."""
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    above_all = [(first, k) for k in keys if k != first] if first in keys else []
    for a, b in downward + above_all:
        preds[b].append(a)
        succs[a].append(b)
    missing = {k: len(preds[k]) for k in keys}
    ready = [k for k in keys if missing[k] == 0]
    rank = dict.fromkeys(keys, 0)
    while ready:
        node = ready.pop(0)
        for nxt in succs[node]:
            rank[nxt] = max(rank[nxt], rank[node] + 1)
            missing[nxt] -= 1
            if missing[nxt] == 0:
                ready.append(nxt)
    if last in rank:
        rank[last] = max((r for k, r in rank.items() if k != last), default=-1) + 1
    return rank


def _chain(slots: dict[str, _Slot], link: Link, ends: tuple[str, str],
           index: int) -> list[_Slot]:
    """The link's slots from its upper to its lower end, a virtual one on every layer between;
    the first virtual one keeps room for the label."""
    top, bottom = slots[ends[0]], slots[ends[1]]
    chain = [top]
    for layer in range(top.layer + 1, bottom.layer):
        labelled = layer == top.layer + 1
        chain.append(_Slot(
            f"\0{index}:{layer}", layer, 4.0,
            LABEL_OFFSET + link.label_size[0] + 4.0 if labelled else 4.0,
            link.label_size[1] if labelled else 0.0))
    chain.append(bottom)
    for upper, lower in itertools.pairwise(chain):
        upper.down.append((lower, link.weight))
        lower.up.append((upper, link.weight))
    return chain


def _layers(slots: dict[str, _Slot], chains: list[list[_Slot]]) -> list[list[_Slot]]:
    """Every slot by layer, each layer first in the order a search from the top meets it."""
    every = list(slots.values()) + [s for chain in chains for s in chain[1:-1]]
    depth = max((s.layer for s in every), default=-1) + 1
    layers: list[list[_Slot]] = [[] for _ in range(depth)]
    seen: set[int] = set()
    for start in sorted(every, key=lambda s: s.layer):
        stack = [start]
        while stack:
            slot = stack.pop()
            if id(slot) in seen:
                continue
            seen.add(id(slot))
            layers[slot.layer].append(slot)
            stack.extend(reversed([s for s, _ in sorted(slot.down, key=lambda d: -d[1])]))
    return [layer for layer in layers if layer]


def _crossings(layers: list[list[_Slot]]) -> float:
    """Weighted crossings of the links between neighbouring layers."""
    total = 0.0
    for layer, next_layer in itertools.pairwise(layers):
        position = {id(s): i for i, s in enumerate(layer)}
        below = {id(s): i for i, s in enumerate(next_layer)}
        segments = [(position[id(s)], below[id(t)], w) for s in layer for t, w in s.down]
        for i, (a0, b0, w0) in enumerate(segments):
            for a1, b1, w1 in segments[i + 1:]:
                if (a0 - a1) * (b0 - b1) < 0:
                    total += w0 * w1
    return total


def _order(layers: list[list[_Slot]]) -> None:
    """Reorder each layer by its neighbours' mean position, down and up, keeping the best."""
    best = [list(layer) for layer in layers]
    best_crossings = _crossings(layers)
    for _ in range(SWEEPS):
        for depth in range(1, len(layers)):
            _sort_by_barycentre(layers, depth, above=True)
        for depth in range(len(layers) - 2, -1, -1):
            _sort_by_barycentre(layers, depth, above=False)
        crossings = _crossings(layers)
        if crossings < best_crossings:
            best, best_crossings = [list(layer) for layer in layers], crossings
        if best_crossings == 0:
            break
    layers[:] = best


def _sort_by_barycentre(layers: list[list[_Slot]], depth: int, *, above: bool) -> None:
    """Order a layer by the mean position of each slot's neighbours in the layer above (or
    below); a slot with none there keeps its place."""
    neighbours = layers[depth - 1] if above else layers[depth + 1]
    position = {id(s): i for i, s in enumerate(neighbours)}
    for i, slot in enumerate(layers[depth]):
        links = slot.up if above else slot.down
        weight = sum(w for s, w in links if id(s) in position)
        slot.order = (sum(position[id(s)] * w for s, w in links if id(s) in position) / weight
                      if weight else float(i))
    layers[depth].sort(key=lambda s: s.order)


def _place(layers: list[list[_Slot]]) -> None:
    """x of every slot: packed in order first, then moved towards its neighbours' mean x as
    far as its layer's order and room allow, down and up, several times."""
    for layer in layers:
        x = 0.0
        for i, slot in enumerate(layer):
            x += slot.left if i else 0.0
            slot.x = x
            x += slot.right + GAP_X
    for _ in range(PLACEMENT_PASSES):
        for layer in layers[1:] + layers[::-1]:
            targets = []
            for slot in layer:
                near = [(s, w * _pull(slot, s)) for s, w in slot.up + slot.down]
                weight = sum(w for _, w in near)
                targets.append(sum(s.x * w for s, w in near) / weight if weight else slot.x)
            _closest_in_order(layer, targets)


def _pull(slot: _Slot, other: _Slot) -> float:
    """How hard a neighbour pulls: a long link's virtual nodes pull each other hardest, so it
    runs straight rather than wiggling (Graphviz weighs them 1, 2, 8 the same way)."""
    virtual = slot.key.startswith("\0") + other.key.startswith("\0")
    return (1.0, 2.0, 8.0)[virtual]


def _closest_in_order(layer: list[_Slot], targets: list[float]) -> None:
    """Move the layer's slots as close to ``targets`` as possible (least squares) while each
    stays right of its left neighbour by their room and the gap: pool adjacent violators on
    the targets less each slot's offset from the first."""
    offsets = [0.0]
    for left, right in itertools.pairwise(layer):
        offsets.append(offsets[-1] + left.right + GAP_X + right.left)
    blocks: list[list[float]] = []  # [mean, count]
    for target, offset in zip(targets, offsets, strict=True):
        blocks.append([target - offset, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, count = blocks.pop()
            blocks[-1][0] = (blocks[-1][0] * blocks[-1][1] + mean * count) / (blocks[-1][1] + count)
            blocks[-1][1] += count
    values = [mean for mean, count in blocks for _ in range(int(count))]
    for slot, value, offset in zip(layer, values, offsets, strict=True):
        slot.x = value + offset


def _layer_heights(layers: list[list[_Slot]]) -> list[float]:
    return [max((s.height for s in layer), default=0.0) or 8.0 for layer in layers]


def _tops(heights: list[float]) -> list[float]:
    tops, y = [], MARGIN
    for height in heights:
        tops.append(y)
        y += height + GAP_Y
    return tops


def _port(slot: _Slot, others: list[tuple[_Slot, float]], other: _Slot) -> float:
    """Where on the box's edge a line to ``other`` attaches: the box's lines spread along its
    middle, in the order of their other ends, so they do not meet in one point."""
    if slot.key.startswith("\0") or len(others) < 2:
        return slot.x
    ordered = sorted(range(len(others)), key=lambda i: others[i][0].x)
    spread = min(slot.left * 1.2, 12.0 * (len(others) - 1))
    index = next(i for i, pos in enumerate(ordered) if others[pos][0] is other)
    return slot.x - spread / 2 + spread * index / (len(others) - 1)


def _route(link: Link, chain: list[_Slot], back: bool, slots: dict[str, _Slot]) -> Route:
    top, bottom = chain[0], chain[-1]
    points = [(_port(top, top.down, chain[1]), top.y + top.height / 2)]
    for slot in chain[1:-1]:
        # Along its label the line runs straight down, beside the text rather than under it.
        half = slot.height / 2
        points += [(slot.x, slot.y - half), (slot.x, slot.y + half)] if half else [(slot.x, slot.y)]
    points.append((_port(bottom, bottom.up, chain[-2]), bottom.y - bottom.height / 2))
    label = chain[1]
    label_at = (label.x + LABEL_OFFSET, label.y + 4.0)
    return Route(link, points[::-1] if back else points, label_at, back=back)


def _loop_route(link: Link, slot: _Slot) -> Route:
    """A loop on the box's right side, out and back in."""
    right = slot.x + slot.left  # the box's own right edge (its room right holds the loop)
    out_at = (right, slot.y - slot.height / 4)
    far = (right + LOOP_PX, slot.y)
    back_at = (right, slot.y + slot.height / 4)
    return Route(link, [out_at, far, back_at], (far[0] + LABEL_OFFSET, slot.y + 4.0),
                 self_loop=True)
