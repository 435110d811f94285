"""The collector's progress lines while it catches up."""

from __future__ import annotations

import logging

import pytest

from sagascope.collector.metrics import CollectorMetrics
from sagascope.collector.progress_log import ProgressLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def metrics() -> CollectorMetrics:
    return CollectorMetrics("progress-log-test")


def test_a_line_every_interval_while_behind_says_rows_rate_and_lag(metrics, caplog):
    clock = Clock()
    progress = ProgressLog(metrics, 10.0, clock)
    metrics.stored.labels("orders").inc(500)
    metrics.lag.labels("orders", "0").set(1200)
    with caplog.at_level(logging.INFO, logger="sagascope.collector.progress_log"):
        clock.now = 5.0
        progress.tick()  # not due yet
        clock.now = 10.0
        progress.tick()
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == "catching up: 500 rows stored (50/s over the last 10s), 1200 records behind"


def test_one_line_when_caught_up_then_quiet(metrics, caplog):
    clock = Clock()
    progress = ProgressLog(metrics, 10.0, clock)
    metrics.stored.labels("orders").inc(700)
    with caplog.at_level(logging.INFO, logger="sagascope.collector.progress_log"):
        for clock.now in (10.0, 20.0, 30.0):
            progress.tick()
    assert [r.getMessage() for r in caplog.records] == [
        "caught up: 700 rows stored, no records behind"
    ]


def test_interval_zero_logs_nothing(metrics, caplog):
    clock = Clock()
    progress = ProgressLog(metrics, 0.0, clock)
    metrics.lag.labels("orders", "0").set(5)
    with caplog.at_level(logging.INFO, logger="sagascope.collector.progress_log"):
        clock.now = 100.0
        progress.tick()
    assert not caplog.records
