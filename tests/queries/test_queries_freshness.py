"""Freshness: the collector's watermark and the newest message, and the warning when stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from seeding import order_saga, seed

from sagascope.cli import main


def _progress(store, read_until: datetime) -> None:
    store.insert("progress", [{
        "group_id": "g", "collector_id": "c", "topic": "orders", "partition": 0,
        "stored_offset": 1, "end_offset": 1, "read_until": read_until, "updated_at": read_until,
    }])


def test_a_stopped_collector_is_named_in_the_warning(store, queries, now) -> None:
    seed(store, order_saga("o-1", "completed", start=now - timedelta(minutes=30)))
    _progress(store, now - timedelta(minutes=20))
    warning = queries.freshness().warning(300)
    assert "collector has not reported progress for 20 min" in warning


def test_a_quiet_stream_with_a_running_collector_says_nothing_arrived(store, queries,
                                                                       now) -> None:
    seed(store, order_saga("o-1", "completed", start=now - timedelta(minutes=30)))
    _progress(store, datetime.now(UTC))
    warning = queries.freshness().warning(300)
    assert warning.startswith("No message has arrived for 29 min")


def test_fresh_data_gives_no_warning(store, queries, now) -> None:
    seed(store, order_saga("o-1", "running", start=now - timedelta(seconds=30)))
    _progress(store, datetime.now(UTC))
    freshness = queries.freshness()
    assert freshness.watermark is not None and freshness.newest_message is not None
    assert freshness.warning(300) == ""


def test_an_empty_store_is_not_stale(queries) -> None:
    freshness = queries.freshness()
    assert (freshness.watermark, freshness.newest_message) == (None, None)
    assert freshness.warning(1) == ""


@pytest.mark.parametrize("command", [["flow", "o-old"], ["stalled", "--json"]])
def test_flow_and_stalled_warn_on_stale_data(store, chdb_path, now, command, capsys,
                                             monkeypatch) -> None:
    seed(store, order_saga("o-old", "completed", start=now - timedelta(minutes=30)))
    _progress(store, now - timedelta(minutes=20))
    args = [*command, "--store-path", chdb_path, "--database", store.database]
    monkeypatch.setenv("SAGASCOPE_DASHBOARD_STALE_AFTER_S", "600")
    assert main(args) == 0
    assert "warning: The collector has not reported progress" in capsys.readouterr().err
    monkeypatch.setenv("SAGASCOPE_DASHBOARD_STALE_AFTER_S", "3600")
    assert main(args) == 0
    assert "warning" not in capsys.readouterr().err
