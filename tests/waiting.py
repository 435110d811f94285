"""The one way tests wait: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout_s: float = 30.0, what: str = "", interval_s: float = 0.1
) -> T:
    """Poll ``condition`` until it returns something truthy (returned) or fail naming ``what``.

    The failure message carries the condition's last value, so a timed-out wait says how far
    it got.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(
                f"timed out after {timeout_s:g} s waiting for {what or condition} (last: {value!r})"
            )
        time.sleep(interval_s)
