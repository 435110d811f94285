"""Live pages in Chromium: on a frozen store an open page asks nothing; under traffic it
refreshes in place, never stale (greyed) for longer than one refresh."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_harness import tile_value, wait_idle
from served_dashboard import ServedDashboard, serve_seeded

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Shorter than the default (10 s) to keep the test short, long enough that a rerun on a
#: loaded CI machine (2 cores, load 20) is not mistaken for a page left stale.
REFRESH_S = 5.0
#: How long a person reads a page in the frozen-store test.
OPEN_FOR_MS = 30_000

#: Records, in the page, the longest time any element stayed marked stale (what a rerun
#: greys out), sampled every 20 ms.
STALE_WATCH_JS = """
() => {
  window.__stale = {longest: 0, since: null};
  setInterval(() => {
    const now = performance.now();
    if (document.querySelector('[data-stale="true"]')) {
      if (window.__stale.since === null) window.__stale.since = now;
      window.__stale.longest = Math.max(window.__stale.longest, now - window.__stale.since);
    } else {
      window.__stale.since = null;
    }
  }, 20);
}
"""


@pytest.fixture(scope="module")
def live_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDashboard]:
    """A dashboard of its own (refreshing every ``REFRESH_S``), so traffic here changes no
    other test."""
    with serve_seeded(tmp_path_factory.mktemp("live"), refresh_s=REFRESH_S) as dashboard:
        yield dashboard


def test_a_page_open_on_a_frozen_store_asks_no_query(live_served: ServedDashboard,
                                                     chromium: Any) -> None:
    page = chromium.new_page(viewport={"width": 1440, "height": 900})
    try:
        page.goto(f"{live_served.url}/?range=all")
        wait_idle(page, "Cycle time by saga type")
        before = live_served.queries()
        # The behaviour under test is a page left open: nothing to await but the time.
        page.wait_for_timeout(OPEN_FOR_MS)
        after = live_served.queries()
    finally:
        page.close()
    assert after["other"] == before["other"], (before, after)
    # The page stayed live: it checked the watermark on every refresh.
    assert after["watermark"] - before["watermark"] >= OPEN_FOR_MS / 1000 / REFRESH_S / 2


def test_under_traffic_no_element_stays_stale_longer_than_one_refresh(
        live_served: ServedDashboard, chromium: Any, shots: Path) -> None:
    page = chromium.new_page(viewport={"width": 1440, "height": 900})
    try:
        page.goto(f"{live_served.url}/?range=all")
        wait_idle(page, "Cycle time by saga type")
        page.evaluate(STALE_WATCH_JS)
        for _ in range(3):
            shown = tile_value(page, "Sagas")
            assert live_served.command("traffic").startswith("TRAFFIC ")
            # The new saga appears without a click: the page refreshed by itself.
            page.wait_for_function(
                """(n) => [...document.querySelectorAll('.sg-tile')]
                     .some(m => m.querySelector('.sg-tile-label').innerText === 'Sagas' &&
                                parseInt(m.querySelector('.sg-tile-value').innerText
                                         .replace(/\\D/g, '')) === n)""",
                arg=shown + 1, timeout=30000)
            wait_idle(page, "Cycle time by saga type")
        longest_ms = page.evaluate("() => window.__stale.longest")
        page.screenshot(path=str(shots / "live_after_traffic.png"), full_page=True)
    finally:
        page.close()
    assert longest_ms < REFRESH_S * 1000, f"an element stayed stale for {longest_ms:.0f} ms"


#: Records, in the page, the fewest sidebar links seen at once (sampled every 20 ms).
SIDEBAR_WATCH_JS = """
() => {
  window.__fewestLinks = Infinity;
  setInterval(() => {
    const n = document.querySelectorAll('[data-testid="stSidebar"] .sg-pill').length;
    window.__fewestLinks = Math.min(window.__fewestLinks, n);
  }, 20);
}
"""


def test_a_refresh_keeps_the_sidebar_and_what_is_typed_in_a_form(
        live_served: ServedDashboard, chromium: Any) -> None:
    page = chromium.new_page(viewport={"width": 1440, "height": 900})
    try:
        page.goto(f"{live_served.url}/sagas?range=all")
        wait_idle(page, "sagas match")
        page.evaluate(SIDEBAR_WATCH_JS)
        # Typed, not applied yet: a person half-way through choosing filters.
        page.get_by_role("textbox", name="Attribute").fill("customer_id=C-1")
        page.get_by_label("Status", exact=True).select_option("failed")
        for _ in range(2):
            matches = page.get_by_text("sagas match").first.inner_text()
            assert live_served.command("traffic").startswith("TRAFFIC ")
            # The list refreshed by itself with the new saga.
            page.wait_for_function(
                "(before) => [...document.querySelectorAll('p')].some(p => "
                "p.innerText.includes('sagas match') && p.innerText !== before)",
                arg=matches, timeout=30000)
            wait_idle(page, "sagas match")
        fewest = page.evaluate("() => window.__fewestLinks")
        typed = page.get_by_role("textbox", name="Attribute").input_value()
        status = page.get_by_label("Status", exact=True).input_value()
    finally:
        page.close()
    assert fewest >= 7, f"the sidebar's links went down to {fewest} during a refresh"
    assert (typed, status) == ("customer_id=C-1", "failed")
