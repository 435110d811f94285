"""The dashboard's pages (AppTest on the real app) against the oracle, on two systems."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
from app_pages import app_pages
from page_tables import html_tables
from streamlit.testing.v1 import AppTest
from truth_generator import THRESHOLD_S
from truth_store import FIXED_SEEDS, Seeded

from sagascope.dashboard.views.failures import cause_link
from sagascope.queries.formatting import format_duration
from sagascope.settings import AlertSettings, Settings

#: Systems whose pages are opened (each page run takes seconds).
PAGE_SEEDS = (FIXED_SEEDS[4], FIXED_SEEDS[5])  # mixed, stepless; README-like, compensating


@pytest.fixture
def page(truth: Seeded) -> Iterator[Callable[..., AppTest]]:
    """``page("sagas", type=..., range="all")``: a page of the app over the truth store."""
    settings = Settings(alerts=AlertSettings(default_threshold_s=THRESHOLD_S))
    with app_pages() as run:
        yield lambda name, **query: run(name, truth.store, settings, timeout_s=90, **query)


def _table(at: AppTest, column: str) -> pd.DataFrame:
    frames = [f.value for f in at.dataframe] + html_tables(at)
    found = [f for f in frames if column in f.columns]
    assert found, [list(f.columns) for f in frames]
    return found[0]


def _matching(at: AppTest) -> int:
    text = "\n".join(str(m.value) for m in at.markdown)
    found = re.search(r"\*\*([\d,]+) sagas\*\* match", text)
    assert found, text
    return int(found.group(1).replace(",", ""))


@pytest.mark.parametrize("page_seed", PAGE_SEEDS)
def test_saga_list_shows_each_status_and_cycle_time(truth: Seeded, page_seed: int, page: Any) -> None:
    expected = truth.expected[page_seed]
    for kind in truth.systems[page_seed].saga_types:
        want = expected.of_type(kind.name)
        if not want:
            continue
        at = page("sagas", type=kind.name, range="all")
        assert _matching(at) == len(want)
        rows = _table(at, "current step").set_index("saga")
        for facts in want:
            row = rows.loc[facts.saga_id]
            assert (row["status"], row["cycle time"]) == (
                facts.status, format_duration(facts.duration_s)), facts.saga_id


@pytest.mark.parametrize("page_seed", PAGE_SEEDS)
def test_failures_page_causes_and_their_lists(truth: Seeded, page_seed: int, page: Any) -> None:
    prefix = truth.systems[page_seed].prefix + "-"
    at = page("failures", range="all")
    causes = _table(at, "example")
    mine = causes[causes["saga type"].str.startswith(prefix)]
    want: dict[tuple[str, ...], int] = {}
    for c in truth.expected[page_seed].causes.values():
        key = (c.saga_type, c.step, c.service, c.error, c.reason)
        want[key] = want.get(key, 0) + 1
    got = {(r["saga type"], r["failed at step"], r["service"], r["cause"], r["reason"]):
           int(r["sagas"]) for r in mine.to_dict("records")}
    assert got == want
    for row in mine.head(3).to_dict("records"):
        link = cause_link(pd.Series(row))
        assert "type" not in link  # the sidebar's saga type is the user's
        listed = page("sagas", range="all", **link)
        assert _matching(listed) == int(row["sagas"])
        assert listed.query_params.get("type") in (None, "", [])


@pytest.mark.parametrize("page_seed", PAGE_SEEDS)
def test_process_map_counts_and_waiting_now(truth: Seeded, page_seed: int, page: Any) -> None:
    expected = truth.expected[page_seed]
    for kind in truth.systems[page_seed].saga_types:
        if not expected.of_type(kind.name):
            continue
        at = page("process_map", type=kind.name, range="all")
        steps = _table(at, "stalled now").set_index("step")
        assert dict(steps["sagas"]) == dict(expected.step_sagas[kind.name])
        waiting = expected.waiting.get(kind.name, {})
        for step, row in steps.iterrows():
            counts = waiting.get(str(step), {})
            assert row["waiting now"] == counts.get("running", 0) + counts.get(
                "compensating", 0), step
            assert row["stalled now"] == counts.get("stalled", 0), step
        for step in list(steps.index)[:2]:
            listed = page("sagas", type=kind.name, step=str(step), range="all")
            assert _matching(listed) == steps.loc[step, "sagas"]
