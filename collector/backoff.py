"""One retry policy: a delay that doubles per failure up to a cap, and resets on success."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: The longest any collector retry waits.
MAX_BACKOFF_S = 5.0


@dataclass
class Backoff:
    """Doubling delays between retries; ``clock`` is injectable (``time.monotonic``)."""

    first_s: float = 0.1
    max_s: float = MAX_BACKOFF_S
    clock: Callable[[], float] = time.monotonic
    delay_s: float = field(init=False)
    #: When the next attempt is due (``clock`` time); 0 when nothing failed.
    retry_at: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.delay_s = self.first_s

    def failed(self) -> float:
        """A failure: the delay to wait now (the next one doubles); sets ``retry_at``."""
        delay = self.delay_s
        self.retry_at = self.clock() + delay
        self.delay_s = min(delay * 2, self.max_s)
        return delay

    def succeeded(self) -> None:
        self.delay_s = self.first_s
        self.retry_at = 0.0

    def due(self, now: float | None = None) -> bool:
        return (self.clock() if now is None else now) >= self.retry_at
