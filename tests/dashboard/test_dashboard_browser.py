"""The real app served on loopback, driven in headless Debian Chromium, page by page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_harness import tile_value

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: url path -> (text the page must show when it is done, screenshot name)
PAGES = {
    "": ("Sagas by status", "overview"),
    "sagas?range=all": ("sagas** match", "sagas"),
    "flow_explorer?saga=order-compensated": ("Audit trail", "flow_deep_link"),
    "stalled_sagas": ("Stalled after step", "stalled_sagas"),
    "failures?range=all": ("Compensation pairing", "failures"),
    "process_map?range=all": ("Variants", "process_map"),
    "time_spent": ("Where time goes", "time_spent"),
    "alerts?range=all": ("By saga type and step", "alerts"),
}


@pytest.fixture(scope="module")
def page(chromium: Any) -> Iterator[Any]:
    # Streamlit scrolls inside its own container, so a tall viewport shows the whole page.
    page = chromium.new_page(viewport={"width": 1400, "height": 2200})
    yield page
    page.close()


def _shown(locator: Any) -> Any:
    """The locator's first match, once the page shows it."""
    first = locator.first
    first.wait_for(timeout=30000)
    return first


def _settled(page: Any, text: str) -> None:
    """Wait until the page shows ``text`` and Streamlit has finished running the script."""
    _shown(page.get_by_text(text.replace("**", ""), exact=False))
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30000
    )
    page.wait_for_timeout(300)  # let the charts finish drawing before the screenshot


def _open(page: Any, url: str, text: str) -> None:
    """Go to ``url`` and wait until the page is done, showing ``text``."""
    page.goto(url)
    _settled(page, text)


def _landed(page: Any, url_pattern: str, text: str) -> None:
    """Wait until a click has taken the page to a URL matching ``url_pattern`` and the page
    there is done, showing ``text``."""
    page.wait_for_url(re.compile(url_pattern), timeout=30000)
    _settled(page, text)


def _assert_no_error(page: Any, where: str) -> None:
    for selector in ('[data-testid="stException"]', '[data-testid="stAlertContentError"]'):
        assert page.locator(selector).count() == 0, f"{where}: {page.locator(selector).first.inner_text()}"


def test_every_page_loads_without_error(served: Any, page: Any, shots: Path) -> None:
    for path, (text, name) in PAGES.items():
        _open(page, f"{served.url}/{path}", text)
        _assert_no_error(page, name)
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        assert (shots / f"{name}.png").stat().st_size > 10000


def test_search_an_order_id(served: Any, page: Any, shots: Path) -> None:
    _open(page, f"{served.url}/flow_explorer", "Search an order")
    box = page.get_by_label("Order / saga id, trace id, traceparent or message id")
    box.fill(served.ids["failed"])
    page.get_by_role("button", name="Search").click()
    _settled(page, "Audit trail")
    _assert_no_error(page, "flow search")
    assert re.search(r"saga=order-failed", page.url)
    # The flow's parts render one after another: wait for its failed step (a clean-clone run
    # once counted it right after "Audit trail" appeared, before it was drawn).
    _shown(page.get_by_text("PaymentFailed"))
    assert page.get_by_text("PaymentFailed").count() > 0
    page.screenshot(path=str(shots / "flow_search.png"), full_page=True)


def test_unknown_order_id_is_a_friendly_message(served: Any, page: Any) -> None:
    _open(page, f"{served.url}/flow_explorer?saga=no-such-order",
          "No saga, trace or message matches")
    _assert_no_error(page, "unknown id")


# ---- tasks as a user does them ------------------------------------------------------------

ROW_PX = 35


def _click_row(page: Any, table: int, row: int) -> None:
    """Click row ``row`` (0-based) of the ``table``-th table on the page: a plain table's row
    link, or a data grid's row marker."""
    grid = page.locator('[data-testid="stDataFrame"], table.sg-table').nth(table)
    grid.scroll_into_view_if_needed()
    if grid.evaluate("e => e.tagName") == "TABLE":
        grid.locator("tbody tr").nth(row).locator("a").first.click()
        return
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 14, box["y"] + ROW_PX * (row + 1) + ROW_PX / 2)


def _chosen(page: Any, label: str) -> str:
    """What a filter's drop-down shows (its chosen option's text)."""
    return str(page.get_by_label(label, exact=True).evaluate(
        "s => s.options[s.selectedIndex].text"))


def _filter_status(page: Any, status: str) -> None:
    """Pick a status in the Sagas page's filters and apply them."""
    page.get_by_label("Status", exact=True).select_option(status)
    page.get_by_role("button", name="Apply").click()


def _matches(page: Any) -> int:
    text = page.get_by_text(re.compile(r"sagas match")).first.inner_text()
    found = re.search(r"([\d,]+) sagas match", text)
    assert found, text
    return int(found.group(1).replace(",", ""))


def test_find_the_failed_sagas_of_one_type_and_open_one(served: Any, page: Any,
                                                        shots: Path) -> None:
    _open(page, f"{served.url}/sagas?range=all", "sagas match")
    total = _matches(page)
    _filter_status(page, "failed")
    _landed(page, r"status=failed", "sagas match")
    page.wait_for_function(
        f"() => !document.body.innerText.includes('{total:,} sagas match')", timeout=30000)
    failed = _matches(page)
    assert 0 < failed < total
    page.screenshot(path=str(shots / "task_failed_sagas.png"), full_page=True)
    _click_row(page, 0, 0)
    _landed(page, r"flow_explorer\?saga=order-", "Audit trail")
    assert page.get_by_text("Failed at step").count() > 0
    assert "/sagas" not in page.url  # same tab
    assert "range=all" in page.url  # the sidebar's range kept


def test_search_by_attribute_and_by_id_prefix(served: Any, page: Any) -> None:
    _open(page, f"{served.url}/sagas?range=all", "sagas match")
    box = page.get_by_role("textbox", name="Attribute")
    box.fill("error=card declined")
    box.press("Enter")
    _landed(page, r"attr=error", "sagas match")
    page.wait_for_function("() => document.body.innerText.includes('sagas match')")
    by_attribute = _matches(page)
    assert by_attribute >= 1
    _open(page, f"{served.url}/sagas?range=all", "sagas match")
    prefix = page.get_by_role("textbox", name="Saga id starts with")
    prefix.fill("order-100")
    prefix.press("Enter")
    page.wait_for_url(re.compile(r"id_prefix=order-100"), timeout=30000)
    page.wait_for_function("() => document.body.innerText.includes('10 sagas match')",
                           timeout=30000)
    assert _matches(page) == 10  # order-1000 .. order-1009


def test_reload_a_filtered_url_gives_the_same_view(served: Any, page: Any) -> None:
    _open(page, f"{served.url}/sagas?range=all&status=completed&sort=saga_id&order=asc",
          "sagas match")
    first = _matches(page)
    page.reload()
    _settled(page, "sagas match")
    assert _matches(page) == first
    assert "status=completed" in page.url and "sort=saga_id" in page.url
    assert _chosen(page, "Sort by") == "Saga id"
    assert _chosen(page, "Status") == "completed"


def test_open_a_stalled_saga_and_read_why(served: Any, page: Any, shots: Path) -> None:
    _open(page, f"{served.url}/stalled_sagas", "Stalled after step")
    _click_row(page, 0, 0)
    _landed(page, r"flow_explorer\?saga=order-stalled", "Audit trail")
    for text in ("Stalled after step payment", "Waiting for", "Silent for", "threshold",
                 "alerts.default_threshold_s"):
        assert page.get_by_text(text, exact=False).count() > 0, text
    page.screenshot(path=str(shots / "task_why_stalled.png"), full_page=True)


def test_a_failure_cause_opens_only_its_failing_sagas(served: Any, page: Any, shots: Path) -> None:
    _open(page, f"{served.url}/failures?range=all", "Failing sagas by cause")
    failed = tile_value(page, "Sagas that failed")
    _click_row(page, 0, 0)
    _landed(page, r"/sagas\?.*cause=", "sagas match")
    page.screenshot(path=str(shots / "task_failure_cause.png"), full_page=True)
    # The cause's own sagas, not every saga that passed its step, and the user's filters kept.
    assert 0 < _matches(page) <= failed
    assert "type=" not in page.url.replace("cause_type=", "")
    assert page.locator('[aria-current="true"]', has_text="All saga types").count() == 1


def test_a_sidebar_link_changes_the_range_and_keeps_the_filters(served: Any, page: Any,
                                                                shots: Path) -> None:
    _open(page, f"{served.url}/sagas?range=all", "sagas match")
    # A filter chosen on the page reaches the sidebar's links too.
    _filter_status(page, "failed")
    _landed(page, r"status=failed", "sagas match")
    week = page.locator('[data-testid="stSidebar"] a', has_text="Last 7 days")
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stSidebar\"] a')]"
                           ".some(a => a.href.includes('status=failed'))", timeout=30000)
    page.screenshot(path=str(shots / "sidebar.png"), clip={"x": 0, "y": 0, "width": 420,
                                                          "height": 900})
    week.click()
    _landed(page, r"range=7d", "sagas match")
    assert "status=failed" in page.url and "/sagas" in page.url
    page.locator('[data-testid="stSidebar"] a', has_text="Pause live refresh").click()
    _landed(page, r"live=0", "sagas match")
    assert "range=7d" in page.url and "status=failed" in page.url
    assert page.get_by_text("Live refresh paused").count() == 1


def test_click_a_process_map_step_and_land_on_its_sagas(served: Any, page: Any,
                                                        shots: Path) -> None:
    _open(page, f"{served.url}/process_map?range=all", "Variants")
    node = _shown(page.locator('svg a[href*="step=payment"], svg a[*|href*="step=payment"]'))
    page.screenshot(path=str(shots / "task_process_map.png"), full_page=True)
    node.click()
    _landed(page, r"/sagas\?.*step=payment", "sagas match")
    assert _matches(page) > 0
    assert _chosen(page, "Passed through step") == "payment"


def test_acknowledge_an_alert_group(served: Any, page: Any, shots: Path) -> None:
    _open(page, f"{served.url}/alerts?range=all", "By saga type and step")
    _click_row(page, 0, 0)
    page.get_by_label("Your name").fill("dana")
    page.get_by_role("button", name="Acknowledge", exact=True).click()
    _shown(page.get_by_text("acknowledged by dana", exact=False))
    page.screenshot(path=str(shots / "task_acknowledged.png"), full_page=True)


def test_a_skewed_saga_is_drawn_in_causal_order(served: Any, page: Any, shots: Path) -> None:
    _open(page, f"{served.url}/flow_explorer?saga={served.ids['skewed']}", "Audit trail")
    skewed = _shown(page.locator("svg text", has_text="StockReserved (skewed)"))
    cause = page.locator("svg text", has_text=re.compile(r"^ReserveStock$")).first
    skewed_box, cause_box = skewed.bounding_box(), cause.bounding_box()
    assert skewed_box is not None and cause_box is not None
    # The reply's clock runs 30 s behind, yet it is drawn right of the command it answers.
    assert skewed_box["x"] + skewed_box["width"] / 2 > cause_box["x"] + cause_box["width"] / 2
    assert page.get_by_text("clock running behind", exact=False).count() > 0
    page.screenshot(path=str(shots / "task_skewed.png"), full_page=True)


def test_a_flow_shows_its_trace_as_a_span_waterfall(served: Any, page: Any, shots: Path) -> None:
    _open(page, f"{served.url}/flow_explorer?saga={served.ids['traced_failed']}", "Audit trail")
    chart = _shown(page.locator('svg[aria-label^="Trace "]', has_text="waiting in Kafka"))
    # Every span is a row, named by its service; the payment handler that declined is marked.
    for label in ("orders · OrderPlaced send", "inventory · ReserveStock process",
                  "⚠ ↳ payment · RetrievePayment process"):
        assert chart.locator("text", has_text=label).count() == 1, label
    assert page.get_by_text("Failed spans").count() == 1
    chart.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "flow_waterfall.png"), full_page=True)


def test_where_time_goes_opens_the_slow_sagas_and_their_trace(served: Any, page: Any,
                                                              shots: Path) -> None:
    _open(page, f"{served.url}/time_spent?range=all", "Handler runs")
    _click_row(page, 0, 0)
    # The row is a link naming its step: the slowest handlings are this page's, in the URL.
    _landed(page, r"time_spent\?.*step_type=.*step=.*service=", "Slowest handlings of")
    page.screenshot(path=str(shots / "task_time_exemplars.png"), full_page=True)
    _click_row(page, 1, 0)
    linked: list[str] = []
    link = re.compile(r"flow_explorer\?.*saga=order-10\d\d.*trace=([0-9a-f]{32})")
    # The link names the saga and the trace (the page drops ?trace= once it is the only one).
    page.wait_for_url(lambda url: bool(link.search(url)) and not linked.append(url),
                      timeout=30000)
    _settled(page, "Audit trail")
    trace = link.search(linked[0])
    assert trace is not None
    # The waterfall drawn is that trace's.
    _shown(page.locator(f'svg[aria-label="Trace {trace.group(1)}"]'))
    page.screenshot(path=str(shots / "task_time_trace.png"), full_page=True)


def test_where_time_goes_lists_the_sagas_of_a_step(served: Any, page: Any) -> None:
    _open(page, f"{served.url}/time_spent?range=all", "Handler runs")
    _click_row(page, 0, 0)
    _landed(page, r"time_spent\?.*step=", "Slowest handlings of")
    page.get_by_role("button", name="Open its sagas").click()
    _landed(page, r"/sagas\?.*step=.*service=", "sagas match")
    assert _matches(page) > 0
