"""Fixtures of the collector tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from sagascope.collector.clients import CLIENTS
from sagascope.settings import CollectorSettings

_group_counter = itertools.count()


@pytest.fixture(params=CLIENTS)
def consumer_client(request: pytest.FixtureRequest) -> str:
    """Each Kafka client the collector ships (``collector.client``): every test running a
    collector runs on each, so each behaviour is asserted on every backend."""
    return str(request.param)


@pytest.fixture
def collector_settings(
    request: pytest.FixtureRequest, consumer_client: str
) -> Callable[..., CollectorSettings]:
    """CollectorSettings for one test: own group, short joins and flushes, one client."""

    def make(include: str, **overrides: Any) -> CollectorSettings:
        safe = "".join(c if c.isalnum() else "-" for c in request.node.name)[:30]
        base = CollectorSettings(
            group_id=f"g-{safe}-{next(_group_counter)}",
            include=include,
            flush_interval_s=0.3,
            max_poll_interval_ms=3000,
            session_timeout_ms=3000,
            topic_refresh_s=1.0,
            batch_rows=2000,
            client=consumer_client,
        )
        return replace(base, **overrides)

    return make
