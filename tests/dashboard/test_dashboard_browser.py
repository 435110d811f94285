"""The real app served on loopback, driven in headless Debian Chromium, page by page."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

#: url path -> (text the page must show when it is done, screenshot name)
PAGES = {
    "": ("Sagas by status", "overview"),
    "flow_explorer?saga=order-compensated": ("Audit trail", "flow_deep_link"),
    "stuck_sagas": ("Stuck after step", "stuck_sagas"),
    "failures": ("Compensation pairing", "failures"),
    "process_map": ("Variants", "process_map"),
    "alerts": ("Open", "alerts"),
}


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # Streamlit scrolls inside its own container, so a tall viewport shows the whole page.
        page = browser.new_page(viewport={"width": 1400, "height": 2200})
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $SAGASCOPE_SCREENSHOT_DIR, else a temporary directory."""
    target = os.environ.get("SAGASCOPE_SCREENSHOT_DIR")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _settled(page: Any, text: str) -> None:
    """Wait until the page shows ``text`` and Streamlit has finished running the script."""
    page.get_by_text(text, exact=False).first.wait_for(timeout=30000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30000
    )
    page.wait_for_timeout(300)  # let Plotly finish drawing before the screenshot


def _assert_no_error(page: Any, where: str) -> None:
    for selector in ('[data-testid="stException"]', '[data-testid="stAlertContentError"]'):
        assert page.locator(selector).count() == 0, f"{where}: {page.locator(selector).first.inner_text()}"


def test_every_page_loads_without_error(served: Any, browser_page: Any, shots: Path) -> None:
    for path, (text, name) in PAGES.items():
        browser_page.goto(f"{served.url}/{path}")
        _settled(browser_page, text)
        _assert_no_error(browser_page, name)
        browser_page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        assert (shots / f"{name}.png").stat().st_size > 10000


def test_search_an_order_id(served: Any, browser_page: Any, shots: Path) -> None:
    browser_page.goto(f"{served.url}/flow_explorer")
    _settled(browser_page, "Search an order")
    box = browser_page.get_by_label("Order / saga id, trace id or message id")
    box.fill(served.ids["failed"])
    browser_page.get_by_role("button", name="Search").click()
    _settled(browser_page, "Audit trail")
    _assert_no_error(browser_page, "flow search")
    assert re.search(r"saga=order-failed", browser_page.url)
    # The flow's parts render one after another: wait for its failed step (a clean-clone run
    # once counted it right after "Audit trail" appeared, before it was drawn).
    browser_page.get_by_text("PaymentFailed").first.wait_for(timeout=30000)
    assert browser_page.get_by_text("PaymentFailed").count() > 0
    browser_page.screenshot(path=str(shots / "flow_search.png"), full_page=True)


def test_unknown_order_id_is_a_friendly_message(served: Any, browser_page: Any) -> None:
    browser_page.goto(f"{served.url}/flow_explorer?saga=no-such-order")
    _settled(browser_page, "No saga, trace or message matches")
    _assert_no_error(browser_page, "unknown id")
