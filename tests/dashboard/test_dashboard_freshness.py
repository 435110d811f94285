"""Every page says how current its data is, and warns when the collector stopped reporting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from seeding import order_saga, seed


def _stale(store: Any, minutes: float) -> None:
    now = datetime.now(UTC)
    seed(store, order_saga("o-quiet", "completed", start=now - timedelta(minutes=40)))
    read_until = now - timedelta(minutes=minutes)
    store.insert("progress", [{
        "group_id": "g", "collector_id": "c", "topic": "orders", "partition": 0,
        "stored_offset": 1, "end_offset": 1, "read_until": read_until, "updated_at": read_until,
    }])


def _html(at: Any) -> str:
    return "\n".join(str(e.proto.body) for e in at.get("html"))


#: Every page of the app (tests/dashboard/conftest.py's PAGES keys).
ALL_PAGES = ("alerts", "failures", "flow", "overview", "process_map", "sagas", "stalled", "time")


@pytest.mark.parametrize("page", ALL_PAGES)
def test_every_page_warns_when_the_collector_stopped(page: str, empty_store: Any,
                                                     open_page: Any) -> None:
    _stale(empty_store, minutes=15)
    at = open_page(page, empty_store, saga="o-quiet") if page == "flow" else open_page(
        page, empty_store)
    assert "Data as of" in _html(at)
    assert any("collector has not reported progress for 15 min" in w.value
               for w in at.warning), [w.value for w in at.warning]


def test_no_collector_warning_while_the_collector_reports(empty_store: Any, open_page: Any) -> None:
    _stale(empty_store, minutes=0)
    at = open_page("overview", empty_store)
    assert "Data as of" in _html(at)
    assert not any("collector" in w.value for w in at.warning)


def test_the_freshness_check_is_shared_by_runs_within_its_age(empty_store: Any, open_page: Any,
                                                              monkeypatch: Any) -> None:
    from sagascope.queries import SagaQueries

    _stale(empty_store, minutes=15)
    checks: list[str] = []
    check = SagaQueries.freshness
    monkeypatch.setattr(SagaQueries, "freshness",
                        lambda self: checks.append("checked") or check(self))
    at = open_page("overview", empty_store)  # two runs: the app's first page, then this one
    at.run()
    assert checks == ["checked"]
    assert any("collector has not reported progress" in w.value for w in at.warning)


def test_one_watermark_reading_serves_half_a_refresh(monkeypatch: Any) -> None:
    """Under live traffic the watermark moves with every insert: read once per half refresh,
    it lets the visits of that window share their cached answers."""
    from sagascope.dashboard import cached_queries, runtime
    from sagascope.settings import Settings, load_settings

    monkeypatch.setattr(runtime, "settings", lambda: load_settings(
        None, {"dashboard.refresh_s": 12.0}))
    assert cached_queries.watermark_max_age_s() == 6.0
    monkeypatch.setattr(runtime, "settings", lambda: load_settings(
        None, {"dashboard.refresh_s": 1.0}))
    assert cached_queries.watermark_max_age_s() == cached_queries.WATERMARK_MAX_AGE_S
    assert Settings().dashboard.refresh_s / 2 == 5.0
