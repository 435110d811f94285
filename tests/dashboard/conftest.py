"""Dashboard fixtures: one seeded store for the page tests, AppTest on the real app script."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from app_pages import app_pages
from browser_harness import CHROMIUM, CHROMIUM_ARGS
from seeding import SagaScript, order_saga, seed
from served_dashboard import ServedDashboard, serve_seeded
from streamlit.testing.v1 import AppTest

from sagascope.store import ChdbStore, ensure_schema

TRIP_FLOW = "trip-booking"
_db_counter = itertools.count()


@dataclass
class Seeded:
    store: ChdbStore
    now: datetime
    #: ``{status: saga_id}`` of the order sagas, plus ``skewed`` and ``trip``.
    ids: dict[str, str]
    #: Message types of the skewed saga, in the causal order the flow must show.
    skewed_types: list[str]
    #: A message id of the compensated saga.
    message_id: str


def _fresh_store(chdb_path: str, name: str) -> ChdbStore:
    store = ChdbStore(chdb_path, f"dash_{os.getpid()}_{name}_{next(_db_counter)}")
    ensure_schema(store)
    return store


@pytest.fixture(scope="session")
def seeded(chdb_path: str) -> Iterator[Seeded]:
    """Order sagas of every status, one whose inventory clock runs 30 s behind, one trip."""
    store = _fresh_store(chdb_path, "seeded")
    now = datetime.now(UTC)
    # Our own starts (not seed_scenarios'), so the time-range numbers are exact.
    starts = {"completed": timedelta(minutes=30), "failed": timedelta(minutes=30),
              "compensating": timedelta(seconds=40), "compensated": timedelta(minutes=30),
              "running": timedelta(seconds=10), "stalled": timedelta(hours=1)}
    ids = {status: f"order-{status}" for status in starts}
    seed(store, [order_saga(saga_id, "running" if status == "stalled" else status,
                            start=now - starts[status]) for status, saga_id in ids.items()])
    skewed = order_saga("order-skewed", "completed", start=now - timedelta(minutes=20),
                        inventory_skew_s=-30)
    trip = SagaScript("trip-1", TRIP_FLOW, start=now - timedelta(minutes=15))
    trip.command("BookFlight", "trips", step="flight")
    trip.event("FlightBooked", "airline", step="flight", after_s=3)
    trip.event("TripConfirmed", "trips", step="confirm", after_s=1, status="completed")
    seed(store, skewed, trip)
    compensated_rows = [r for r in _rows(store, ids["compensated"])]
    yield Seeded(
        store=store,
        now=now,
        ids={**ids, "skewed": "order-skewed", "trip": "trip-1"},
        skewed_types=[str(r["type"]) for r in skewed.rows],
        message_id=str(compensated_rows[3]["message_id"]),
    )
    store.command(f"DROP DATABASE IF EXISTS {store.database}")


def _rows(store: ChdbStore, saga_id: str) -> list[dict[str, Any]]:
    return store.query(
        "SELECT message_id, type FROM messages WHERE saga_id = {s:String} ORDER BY event_time",
        {"s": saga_id},
    ).dicts()


@pytest.fixture
def empty_store(chdb_path: str) -> Iterator[ChdbStore]:
    store = _fresh_store(chdb_path, "empty")
    yield store
    store.command(f"DROP DATABASE IF EXISTS {store.database}")


@pytest.fixture
def open_page() -> Iterator[Callable[..., AppTest]]:
    """Run the real app on a page against a store: ``open_page("flow", store, saga="x")``."""
    with app_pages() as run:
        yield run


# ---- the real server in a subprocess (its own chDB directory) ---------------------------


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDashboard]:
    """The dashboard served in a subprocess over a seeded store (shared by the browser tests)."""
    with serve_seeded(tmp_path_factory.mktemp("served")) as dashboard:
        yield dashboard


# ---- headless Debian Chromium -------------------------------------------------------------


# Per module, not per session: Playwright's sync API runs an event loop in this thread while
# it is open, and every later asyncio.run() (aiokafka tests) would fail beside it.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never ``playwright install``)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $SAGASCOPE_SCREENSHOT_DIR, else a temporary directory."""
    target = os.environ.get("SAGASCOPE_SCREENSHOT_DIR")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
