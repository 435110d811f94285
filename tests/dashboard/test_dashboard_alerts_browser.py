"""The Alerts page in headless Debian Chromium at 1440 x 900, over an alert storm raised by the
real alerter (alerts_seeded_server.py): who handles a group shows on its row without scrolling,
acknowledging a group from its row's link marks that row, silenced groups are apart."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from served_dashboard import serve_script

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: A common laptop screen: the brief's width, a browser window's height.
VIEWPORT = {"width": 1440, "height": 900}


@pytest.fixture(scope="module")
def storm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard served over the storm, in a subprocess with its own chDB directory."""
    work = tmp_path_factory.mktemp("alerts_served")
    with serve_script("alerts_seeded_server.py", work, timeout_s=120, prints_ids=False) as served:
        yield served.url


@pytest.fixture(scope="module")
def page(storm_url: str, chromium: Any) -> Iterator[Any]:
    page = chromium.new_page(viewport=VIEWPORT)
    yield page
    page.close()


def _settled(page: Any) -> None:
    page.get_by_text("By saga type and step").first.wait_for(timeout=60000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60000
    )


def _groups(page: Any) -> Any:
    return page.locator('table[aria-label="Alert groups"]').first


def _row(page: Any, marker: str) -> Any:
    """The group row whose status reads ``marker``."""
    return _groups(page).locator("tbody tr", has=page.locator("td", has_text=marker)).first


def _cells(row: Any) -> list[str]:
    return [text.strip() for text in row.locator("td").all_inner_texts()]


def _in_viewport(page: Any, element: Any) -> bool:
    """The element lies inside the window: no scrolling, sideways or down, needed to see it."""
    box = element.bounding_box()
    assert box is not None
    return (box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"]
            and box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"])


def test_who_handles_a_group_is_visible_without_scrolling_at_1440_px(
        storm_url: str, page: Any, shots: Path) -> None:
    page.goto(f"{storm_url}/alerts?range=all")
    _settled(page)
    row = _row(page, "◐ acknowledged")
    row.wait_for(timeout=30000)
    cells = row.locator("td")
    assert cells.nth(0).inner_text().strip() == "◐ acknowledged"
    handled = cells.nth(1)
    assert re.fullmatch(r"sam\.okafor at \d\d:\d\d UTC", handled.inner_text().strip())
    assert _in_viewport(page, cells.nth(0)) and _in_viewport(page, handled)
    scrolled = page.evaluate(
        "() => document.querySelector('[data-testid=\"stMain\"]')?.scrollTop ?? window.scrollY")
    assert scrolled == 0
    page.screenshot(path=str(shots / "alerts_1440_open.png"))


def test_acknowledging_a_group_from_its_row_marks_that_row(storm_url: str, page: Any,
                                                          shots: Path) -> None:
    page.goto(f"{storm_url}/alerts?range=all")
    _settled(page)
    row = _row(page, "● open")
    step = _cells(row)[3]
    row.locator("a").first.click()
    page.wait_for_url(re.compile(r"handle_step="), timeout=30000)
    page.get_by_label("Your name").wait_for(timeout=30000)
    page.screenshot(path=str(shots / "alerts_1440_handling.png"))
    page.get_by_label("Your name").fill("lee")
    page.get_by_label("Note").fill("restarting the stock consumer")
    page.get_by_role("button", name="Acknowledge", exact=True).click()
    _groups(page).get_by_text("lee at ", exact=False).first.wait_for(timeout=30000)
    _settled(page)
    assert page.get_by_label("Your name").count() == 0  # back to the list
    rows = [_cells(r) for r in _groups(page).locator("tbody tr").all()]
    assert [r[0] for r in rows] == ["◐ acknowledged"] * len(rows), rows
    (mine,) = [r for r in rows if r[1].startswith("lee at ")]
    assert mine[3] == step
    page.screenshot(path=str(shots / "alerts_1440_acknowledged.png"))


def test_silenced_groups_are_listed_apart(storm_url: str, page: Any, shots: Path) -> None:
    page.goto(f"{storm_url}/alerts?range=all")
    _settled(page)
    page.get_by_role("link", name=re.compile(r"^silenced \(1 group\)$")).click()
    page.wait_for_url(re.compile(r"show=silenced"), timeout=30000)
    _settled(page)
    page.get_by_text("Alerts (silenced)").wait_for(timeout=30000)
    rows = [_cells(r) for r in _groups(page).locator("tbody tr").all()]
    assert len(rows) == 1, rows  # one group only
    assert rows[0][0] == "◌ silenced"
    assert rows[0][1].startswith("dana at ") and ", until " in rows[0][1], rows
    page.screenshot(path=str(shots / "alerts_1440_silenced.png"))
