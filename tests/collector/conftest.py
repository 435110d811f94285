"""Fixtures of the collector tests."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sagascope.collector.clients import CLIENTS

from sagascope.embedded import create_topics
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


_topic_counter = itertools.count()


@pytest.fixture
def make_topic(bootstrap_servers: str, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Create a fresh topic with N partitions, named after the test and its parameters (the
    same test on each client must not match the other run's topics with its prefix)."""

    def make(prefix: str = "t", partitions: int = 1) -> str:
        safe = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]
        tag = f"{zlib.crc32(request.node.nodeid.encode()):08x}"
        name = f"{prefix}.{safe}-{tag}.{next(_topic_counter)}"
        create_topics(bootstrap_servers, {name: partitions})
        return name

    return make
