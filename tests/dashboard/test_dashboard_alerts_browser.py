"""The Alerts page in headless Debian Chromium at 1440 x 900, over an alert storm raised by the
real alerter (alerts_seeded_server.py): who handles a group shows on its row without scrolling,
acknowledging marks the row, silenced groups are apart."""

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
ROW_PX = 35


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


def _group_grid(page: Any) -> Any:
    return page.locator('[data-testid="stDataFrame"]').first


def _drawn_row(page: Any, row: int) -> list[str]:
    """The texts of a group row's cells that the grid draws. The grid (glide-data-grid) keeps
    an accessible copy of exactly the cells in its visible region, so a column scrolled out of
    sight is missing here."""
    cells = _group_grid(page).locator(f"[id^='glide-cell-'][id$='-{row}']")
    return [cells.nth(i).inner_text() for i in range(cells.count())]


def _row_of(page: Any, marker: str) -> int:
    cells = _group_grid(page).locator("[id^='glide-cell-1-']")
    for i in range(cells.count()):
        if cells.nth(i).inner_text() == marker:
            found = re.search(r"-(\d+)$", cells.nth(i).get_attribute("id") or "")
            assert found
            return int(found.group(1))
    raise AssertionError(f"no group row shows {marker!r}")


def _in_viewport(page: Any, row: int) -> bool:
    """The row lies inside the window: no scrolling, sideways or down, needed to see it."""
    box = _group_grid(page).bounding_box()
    assert box is not None
    row_bottom = box["y"] + ROW_PX * (row + 2)  # header row, then rows 0..row
    return (box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"]
            and box["y"] >= 0 and row_bottom <= VIEWPORT["height"])


def test_who_handles_a_group_is_visible_without_scrolling_at_1440_px(
        storm_url: str, page: Any, shots: Path) -> None:
    page.goto(f"{storm_url}/alerts?range=all")
    _settled(page)
    _group_grid(page).locator("[id^='glide-cell-']").first.wait_for(
        state="attached", timeout=30000)
    row = _row_of(page, "◐ acknowledged")
    drawn = _drawn_row(page, row)
    assert "◐ acknowledged" in drawn
    assert any(re.fullmatch(r"sam\.okafor at \d\d:\d\d UTC", text) for text in drawn), drawn
    assert _in_viewport(page, row)
    scrolled = page.evaluate(
        "() => document.querySelector('[data-testid=\"stMain\"]')?.scrollTop ?? window.scrollY")
    assert scrolled == 0
    page.screenshot(path=str(shots / "alerts_1440_open.png"))


def test_acknowledging_a_group_marks_its_row(storm_url: str, page: Any, shots: Path) -> None:
    page.goto(f"{storm_url}/alerts?range=all")
    _settled(page)
    _group_grid(page).locator("[id^='glide-cell-']").first.wait_for(
        state="attached", timeout=30000)
    row = _row_of(page, "● open")
    box = _group_grid(page).bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 14, box["y"] + ROW_PX * (row + 1) + ROW_PX / 2)
    page.get_by_label("Your name").wait_for(timeout=30000)
    page.get_by_label("Your name").fill("lee")
    page.get_by_label("Note").fill("restarting the stock consumer")
    page.get_by_role("button", name="Acknowledge", exact=True).click()
    _group_grid(page).get_by_text("lee at ", exact=False).first.wait_for(
        state="attached", timeout=30000)
    _settled(page)
    rows = [_drawn_row(page, r) for r in range(2)]
    assert [r[0] for r in rows] == ["◐ acknowledged", "◐ acknowledged"], rows
    assert any(text.startswith("lee at ") for r in rows for text in r), rows
    page.screenshot(path=str(shots / "alerts_1440_acknowledged.png"))


def test_silenced_groups_are_listed_apart(storm_url: str, page: Any, shots: Path) -> None:
    page.goto(f"{storm_url}/alerts?range=all")
    _settled(page)
    page.get_by_role("radio", name=re.compile(r"^silenced \(1 group\)$")).click()
    page.wait_for_url(re.compile(r"show=silenced"), timeout=30000)
    _settled(page)
    page.get_by_text("Alerts (silenced)").wait_for(timeout=30000)
    # The grid redraws after the script ran: wait for its first row to change.
    _group_grid(page).locator("[id='glide-cell-1-0']", has_text="◌ silenced").wait_for(
        state="attached", timeout=30000)
    drawn = _drawn_row(page, 0)
    assert any(text.startswith("dana at ") and ", until " in text for text in drawn), drawn
    assert _group_grid(page).locator("[id^='glide-cell-1-1']").count() == 0  # one group only
    page.screenshot(path=str(shots / "alerts_1440_silenced.png"))
