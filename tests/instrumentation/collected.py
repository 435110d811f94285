"""The real collector over chosen topics into a test's chDB store, for end-to-end checks."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_groups = itertools.count()


@contextmanager
def collecting(store: Any, bootstrap_servers: str, include: str) -> Iterator[Any]:
    """Run a collector over the topics matching ``include``; yields ``SagaQueries`` on the store."""
    from sagascope.collector import Collector
    from sagascope.queries import SagaQueries
    from sagascope.settings import CollectorSettings

    collector = Collector(store, bootstrap_servers, CollectorSettings(
        group_id=f"collector-{os.getpid()}-{next(_groups)}", include=include,
        flush_interval_s=0.3, max_poll_interval_ms=3000, session_timeout_ms=3000,
        topic_refresh_s=1.0, decode_workers=0,
    ))
    collector.start()
    try:
        yield SagaQueries(store)
    finally:
        collector.stop()
