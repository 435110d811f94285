"""What the collector tells its log: at start, the store and the broker; while it runs, a line
every ``collector.progress_log_s`` while it is behind (rows stored, rate, records still to
read), and one when it caught up. (Each topic's partitions and where they start are logged
when they are positioned, by ``rebalance``.)"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sagascope.collector.metrics import CollectorMetrics
from sagascope.settings import CollectorSettings
from sagascope.store.base import Store

log = logging.getLogger(__name__)


def log_start(store: Store, bootstrap_servers: str, settings: CollectorSettings) -> None:
    """One line for the store, one for the broker (a server's URL is left out of the store's
    line: it may carry a password)."""
    path = getattr(store, "path", "")
    log.info("store: %s%s, database %s", store.backend, f" at {path}" if path else "", store.database)
    log.info(
        "broker: %s, client %s, group %s; topics: include %s exclude %s, new partitions start "
        "at %s", bootstrap_servers, settings.client, settings.group_id, settings.include,
        settings.exclude, settings.start_from,
    )


class ProgressLog:
    """Progress lines from the collector's metrics (``stored`` and ``lag``).

    Args:
        interval_s: seconds between lines while behind; 0 logs none.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self, metrics: CollectorMetrics, interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._interval_s = interval_s
        self._clock = clock
        self._since = clock()
        self._stored_since = 0.0
        self._behind = True  # the first line says whether it started caught up

    def tick(self) -> None:
        """Log a line when one is due (called after each progress write)."""
        now = self._clock()
        if self._interval_s <= 0 or now - self._since < self._interval_s:
            return
        stored = self._metrics.value("stored")
        lag = int(self._metrics.value("lag"))
        rate = (stored - self._stored_since) / (now - self._since)
        if lag > 0:
            log.info(
                "catching up: %d rows stored (%.0f/s over the last %.0fs), %d records behind",
                stored, rate, now - self._since, lag,
            )
        elif self._behind:
            log.info("caught up: %d rows stored, no records behind", stored)
        self._behind = lag > 0
        self._since, self._stored_since = now, stored
