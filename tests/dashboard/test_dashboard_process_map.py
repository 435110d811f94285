"""The process map drawn on the server as SVG: every step and arrow present with its counts and
link, loops and retries drawn readably; and the page over a real chDB store."""

from __future__ import annotations

import itertools
import random
import re
from typing import Any
from xml.etree import ElementTree

import pandas as pd
from page_tables import html_tables, tile_values

from sagascope.dashboard.layered_layout import Box, Link, layered
from sagascope.dashboard.process_graph import process_map_svg

SVG = "{http://www.w3.org/2000/svg}"
Seeded = Any  # tests/dashboard/conftest.py


def _retry_map(overlay: str = "frequency") -> ElementTree.Element:
    """A -> B -> C, B retried (B -> B), C sent back to A (a loop), B's sagas stalling."""
    nodes = pd.DataFrame({"activity": ["A", "B", "C"], "count": [12, 14, 4],
                          "sagas": [10, 10, 4], "starts": [10, 0, 0], "ends": [0, 6, 4]})
    edges = pd.DataFrame({"source": ["A", "B", "B", "C"], "target": ["B", "C", "B", "A"],
                          "count": [12, 4, 2, 2], "sagas": [10, 4, 2, 2],
                          "median_s": [2.0, 65.0, 1.0, 3.0], "p95_s": [3.0, 70.0, 1.0, 4.0]})
    drawn = process_map_svg(nodes, edges, overlay=overlay,
                            live={"B": {"running": 2, "stalled": 1}},
                            node_link=lambda a: f"sagas?step={a}",
                            edge_link=lambda a, b: f"sagas?from={a}&to={b}")
    return ElementTree.fromstring(drawn)


def _texts(element: ElementTree.Element) -> list[str]:
    return [t.text or "" for t in element.iter(f"{SVG}text")]


def _nodes(root: ElementTree.Element) -> dict[str, ElementTree.Element]:
    return {e.get("data-step", ""): e for e in root.iter() if e.get("class") == "pm-node"}


def _edges(root: ElementTree.Element) -> dict[tuple[str, str], ElementTree.Element]:
    return {(e.get("data-from", ""), e.get("data-to", "")): e for e in root.iter()
            if (e.get("class") or "").startswith("pm-edge")}


def _box(node: ElementTree.Element) -> tuple[float, float, float, float]:
    rect = node.find(f"{SVG}rect")
    assert rect is not None
    x, y = float(rect.get("x", 0)), float(rect.get("y", 0))
    return x, y, x + float(rect.get("width", 0)), y + float(rect.get("height", 0))


def test_every_step_is_a_box_with_its_counts_opening_its_sagas() -> None:
    nodes = _nodes(_retry_map())
    assert set(nodes) == {"A", "B", "C"}
    assert {a: n.get("href") for a, n in nodes.items()} == {
        a: f"sagas?step={a}" for a in "ABC"}
    assert all(n.get("target") == "_self" for n in nodes.values())
    assert _texts(nodes["B"]) == ["B", "10 sagas · 14 times", "2 waiting · 1 stalled"]
    assert _texts(nodes["A"]) == ["A", "10 sagas · 12 times"]
    hover = nodes["B"].find(f"{SVG}title")
    assert hover is not None and (hover.text or "").startswith("B: 10 sagas passed through it")
    # Stalled sagas there: the step is drawn orange.
    assert nodes["B"].find(f"{SVG}rect").get("stroke") == "#f08c00"  # type: ignore[union-attr]
    assert nodes["A"].find(f"{SVG}rect").get("stroke") == "#3b5bdb"  # type: ignore[union-attr]


def test_every_arrow_is_labelled_and_opens_the_sagas_that_took_it() -> None:
    edges = _edges(_retry_map())
    steps = {k: e for k, e in edges.items() if not {"(start)", "(end)"} & set(k)}
    assert set(steps) == {("A", "B"), ("B", "C"), ("B", "B"), ("C", "A")}
    assert {k: e.get("href") for k, e in steps.items()} == {
        (a, b): f"sagas?from={a}&to={b}" for a, b in steps}
    assert _texts(steps[("A", "B")]) == ["10 sagas · 12 times"]
    assert _texts(steps[("B", "C")]) == ["4"]
    # The start and end markers' arrows say how many sagas started and ended there; no link.
    ends = {k: e for k, e in edges.items() if k not in steps}
    assert sorted(_texts(e)[0] for e in ends.values()) == ["10", "4", "6"]
    assert not [e for e in ends.values() if e.get("href")]


def test_arrow_widths_follow_their_frequency() -> None:
    edges = _edges(_retry_map())

    def width(key: tuple[str, str]) -> float:
        return float(edges[key].find(f"{SVG}path").get("stroke-width", 0))  # type: ignore[union-attr]

    assert width(("A", "B")) > width(("B", "C")) > 1.0


def test_the_duration_overlay_labels_arrows_with_median_and_p95() -> None:
    edges = _edges(_retry_map("duration"))
    assert _texts(edges[("B", "C")]) == ["1 min 05 s", "p95 1 min 10 s"]


def test_a_loop_back_points_up_and_a_retry_loops_beside_its_step() -> None:
    root = _retry_map()
    nodes, edges = _nodes(root), _edges(root)
    a_top, b_top, c_top = (_box(nodes[s])[1] for s in "ABC")
    assert a_top < b_top < c_top  # the main flow reads top to bottom
    back = edges[("C", "A")]
    assert "back" in (back.get("class") or "")
    # C -> A leaves C's top and ends at A's bottom (its arrowhead drawn there, pointing up).
    numbers = [float(n) for n in re.findall(r"-?\d+\.?\d*",
                                            back.find(f"{SVG}path").get("d", ""))]  # type: ignore[union-attr]
    assert numbers[1] == _box(nodes["C"])[1]
    assert abs(numbers[-1] - _box(nodes["A"])[3]) <= 10
    retry = edges[("B", "B")]
    assert "loop" in (retry.get("class") or "")
    start_x = float(re.findall(r"-?\d+\.?\d*",
                               retry.find(f"{SVG}path").get("d", ""))[0])  # type: ignore[union-attr]
    assert start_x == _box(nodes["B"])[2]  # out of B's right side
    assert _texts(retry) == ["2"]


def test_the_page_draws_the_map_as_svg_with_links_and_live_counts(seeded: Seeded,
                                                                  open_page: Any) -> None:
    at = open_page("process_map", seeded.store, range="all")
    # One saga-type picker, the sidebar's: with none chosen, the map takes the first type.
    assert at.query_params["type"] in ("order-fulfillment", ["order-fulfillment"])
    sidebar = "\n".join(str(m.value) for m in at.sidebar.markdown)
    assert 'aria-current="true">order-fulfillment<' in sidebar
    assert not [s for s in at.selectbox if s.label == "Saga type"]
    # Other tests of the session add sagas to the shared store: counted here, in SQL.
    sagas = seeded.store.query("SELECT uniqExact(saga_id) FROM messages "
                               "WHERE saga_type = 'order-fulfillment'").scalar()
    assert tile_values(at)["Sagas"] == f"{sagas:,}"
    steps = next(t for t in html_tables(at) if "stalled now" in t.columns)
    payment = steps[steps["step"] == "payment"].iloc[0]
    assert payment["stalled now"] == 1
    # A step with a stalled saga opens those sagas; the others, the sagas through them.
    assert payment["link"] == "sagas?type=order-fulfillment&at=payment&status=stalled&range=all"
    shipping = steps[steps["step"] == "shipping"].iloc[0]
    assert shipping["link"] == "sagas?type=order-fulfillment&step=shipping&range=all"
    variants = next(t for t in html_tables(at) if "path" in t.columns)
    assert variants.iloc[0]["path"].startswith("place-order → reserve-stock")
    drawn = next(m.value for m in at.markdown if 'aria-label="Process map"' in m.value)
    assert 'href="sagas?type=order-fulfillment&amp;step=payment&amp;range=all"' in drawn
    assert 'href="sagas?type=order-fulfillment&amp;from=payment&amp;to=shipping' in drawn
    assert not at.get("graphviz_chart")


def test_the_overlay_is_chosen_by_a_link_that_keeps_the_filters(seeded: Seeded,
                                                                open_page: Any) -> None:
    at = open_page("process_map", seeded.store, range="all", type="order-fulfillment")
    choice = next(m.value for m in at.markdown if "Arrows show" in m.value)
    assert "<b>Frequency</b>" in choice
    assert 'href="process_map?range=all&amp;type=order-fulfillment&amp;overlay=duration"' in choice
    at = open_page("process_map", seeded.store, range="all", type="order-fulfillment",
                   overlay="duration")
    drawn = next(m.value for m in at.markdown if 'aria-label="Process map"' in m.value)
    assert re.search(r">p95 [^<]+</text>", drawn)


def _branching_map(seed: int) -> tuple[list[str], list[Link]]:
    """About 22 steps in 9 stages of 1-4 alternatives, each reached from the stage before,
    some stages skipped, some loops back and some retries."""
    rng = random.Random(seed)
    stages = [[f"s{k}-{i}" for i in range(rng.randint(1, 4))] for k in range(9)]
    steps = [s for stage in stages for s in stage]
    label = (40.0, 13.0)
    links = []
    for here, there in itertools.pairwise(stages):
        for target in there:
            links.append(Link(rng.choice(here), target, rng.uniform(50, 500), label))
        links += [Link(s, rng.choice(there), rng.uniform(5, 50), label) for s in here]
    links += [Link(stages[k][0], stages[k + 2][-1], 15.0, label) for k in range(0, 7, 2)]
    links += [Link(stages[k][-1], stages[k - 2][0], 10.0, label) for k in range(3, 9, 2)]
    links += [Link(s, s, 5.0, (20.0, 13.0)) for s in rng.sample(steps, 3)]
    links = list({(k.source, k.target): k for k in links}.values())
    links += [Link("start", s) for s in stages[0]] + [Link(s, "end") for s in stages[-1]]
    return steps, links


def test_a_large_map_with_retries_and_loops_keeps_every_box_apart() -> None:
    """No two steps of one layer overlap (a retry's loop and its label beside its step), and
    every step sits below the start and above the end."""
    steps, links = _branching_map(7)
    assert len(steps) >= 15
    boxes = [Box(s, 120.0, 42.0) for s in steps] + [Box("start", 16, 16), Box("end", 16, 16)]
    layout = layered(boxes, links, first="start", last="end")
    # A retry's loop and its label take room right of its step.
    loop_room = {s: max((24 + 5 + k.label_size[0] for k in links if k.source == k.target == s),
                        default=0.0) for s in steps}
    side_by_side = 0
    for a, b in itertools.combinations(steps, 2):
        (xa, ya), (xb, yb) = layout.boxes[a], layout.boxes[b]
        if abs(ya - yb) < 42:
            side_by_side += 1
            left = a if xa < xb else b
            assert abs(xa - xb) >= 120 + loop_room[left], (a, b)
    assert side_by_side >= 10
    start_y, end_y = layout.boxes["start"][1], layout.boxes["end"][1]
    assert all(start_y < layout.boxes[s][1] < end_y for s in steps)
    assert len(layout.routes) == len(links)
    assert sum(r.back for r in layout.routes) >= 3
