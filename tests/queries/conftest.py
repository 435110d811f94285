"""Fixtures of the query-layer tests: a store seeded with one saga of every status."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from seeding import seed_scenarios

from sagascope.queries import SagaQueries


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def queries(store) -> SagaQueries:
    return SagaQueries(store, default_threshold_s=300.0)


@pytest.fixture
def scenarios(store, now) -> dict[str, str]:
    """``{status: saga_id}``, one order saga per status, silences measured from ``now``."""
    return seed_scenarios(store, now)
