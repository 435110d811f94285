"""The saga-state view: idempotent schema, and derived again from messages when missing."""

from __future__ import annotations

from datetime import timedelta

from seeding import order_saga, seed

from sagascope.queries import SagaQueries
from sagascope.store import ensure_schema


def _state(store):
    return store.query(
        "SELECT saga_id, message_count, length(path) FROM saga_state FINAL ORDER BY saga_id"
    ).rows


def test_ensure_schema_twice_keeps_the_state(store, now):
    seed(store, order_saga("o-1", "completed", start=now - timedelta(hours=1)))
    before = _state(store)
    ensure_schema(store)
    assert _state(store) == before == [("o-1", 8, 8)]


def test_state_is_derived_again_from_messages_when_the_view_is_outdated(store, now):
    seed(store, order_saga("o-1", "failed", start=now - timedelta(hours=1)))
    # An older layout: the view is gone and the state table lost its rows.
    store.command("DROP VIEW saga_state_mv")
    store.command("TRUNCATE TABLE saga_state")
    assert SagaQueries(store).sagas() == []
    ensure_schema(store)
    assert [(s.saga_id, s.status, s.messages) for s in SagaQueries(store).sagas()] == [
        ("o-1", "failed", 5)
    ]
    seed(store, order_saga("o-2", "completed", start=now - timedelta(hours=1)))
    assert len(SagaQueries(store).sagas()) == 2
