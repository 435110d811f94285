"""Running the real collector over the discovery tests' topics until all is stored."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from waiting import wait_until

from sagascope.collector import Collector
from sagascope.settings import CollectorSettings, CorrelationRule
from sagascope.store import Store


def collect(
    store: Store, bootstrap_servers: str, topics: Sequence[str], expected: int,
    rules: Sequence[CorrelationRule] = (),
) -> None:
    """Run the real collector over ``topics`` until ``expected`` records are stored."""
    settings = CollectorSettings(
        group_id=f"g-discover-{store.database}",
        include="|".join(re.escape(t) for t in topics), flush_interval_s=0.3,
        max_poll_interval_ms=3000, session_timeout_ms=3000, topic_refresh_s=1.0,
        correlation=tuple(rules),
    )
    collector = Collector(store, bootstrap_servers, settings)
    stop = threading.Event()
    thread = threading.Thread(target=collector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: store.query("SELECT count() FROM messages").scalar() >= expected,
            120, f"{expected} stored messages",
        )
    finally:
        stop.set()
        thread.join(30)
