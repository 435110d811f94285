"""The sidebar's and the pages' choices as links: each keeps the URL's other parameters."""

from __future__ import annotations

from page_tables import link_hrefs

from sagascope.dashboard import choice_links


def test_a_link_changes_one_parameter_keeps_the_others_and_drops_defaults() -> None:
    current = {"status": "failed", "range": "all", "live": "0"}
    assert choice_links.href(current, range="1h") == "?status=failed&live=0"
    assert choice_links.href(current, live="1") == "?status=failed&range=all"


def test_many_saga_types_fold_into_a_list_with_the_current_one_shown() -> None:
    types = [f"flow-{i}" for i in range(12)]
    folded = choice_links.type_links({"type": "flow-3"}, types, shown=8)
    assert "<details>" in folded and "Choose one of 12 saga types" in folded
    assert folded.index('aria-current="true">flow-3<') < folded.index("<details>")
    assert link_hrefs(folded, "flow-4") == ["?type=flow-4"]
    few = choice_links.type_links({}, types[:3], shown=8)
    assert "<details>" not in few and link_hrefs(few, "flow-2") == ["?type=flow-2"]


def test_the_fixed_range_link_carries_its_window_and_the_others_drop_it() -> None:
    current = {"range": "fixed", "since": "2026-12-07 08:00", "until": "2026-12-07 09:00",
               "pct": "p50_s"}
    links = choice_links.range_links(current, {"since": "2026-12-07 08:00",
                                               "until": "2026-12-07 09:00"})
    assert link_hrefs(links, "Last 6 hours") == ["?range=6h&pct=p50_s"]
    assert 'aria-current="true">Fixed<' in links
    fresh = choice_links.range_links({}, {"since": "2026-12-07 08:00", "until": "2026-12-07 09:01"})
    assert link_hrefs(fresh, "Fixed") == [
        "?range=fixed&since=2026-12-07+08%3A00&until=2026-12-07+09%3A01"]
