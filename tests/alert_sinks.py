"""An alert sink for tests, shared by the alerter's and the dashboard's."""

from __future__ import annotations

from sagascope.queries import Alert


class RecordingSink:
    """A sink that keeps what it was sent (the real sinks have their own tests)."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)

    def flush(self, timeout_s: float) -> bool:
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        pass
