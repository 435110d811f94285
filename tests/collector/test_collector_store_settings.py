"""Query-level settings go through Store.query(settings=...) and never drop the store's own."""

from __future__ import annotations

import pytest

from sagascope.store import ChdbStore, StoreError


def test_query_settings_apply(store: ChdbStore) -> None:
    result = store.query("SELECT getSetting('max_threads') AS t", settings={"max_threads": 1})
    assert str(result.scalar()) == "1"


def test_a_read_only_store_stays_read_only_with_extra_settings(store: ChdbStore) -> None:
    reader = ChdbStore(store.path, store.database, read_only=True)
    result = reader.query("SELECT getSetting('readonly')", settings={"max_threads": 1})
    assert str(result.scalar()) == "2"
    with pytest.raises(StoreError, match="readonly"):
        reader.query("SELECT 1", settings={"readonly": 0})


def test_settings_written_into_the_sql_are_refused(store: ChdbStore) -> None:
    with pytest.raises(StoreError, match="settings="):
        store.query("SELECT 1 SETTINGS max_threads = 1")
