"""The one way tests wait: poll a condition until it holds or a deadline passes.

- ``wait_until``: the usual wait; fails the test at the deadline.
- ``poll_until``: the same poll, but a timeout is the caller's to judge (it gets the last value):
  for waits whose test asserts afterwards, or that run outside the test's thread.
- ``collect``: gather what a source hands out (records of a consumer's polls: ``polled``)
  until there are enough.
- ``read_lines_until``: read a child process's output until a line says what is waited for.
- ``stays_true``: the opposite wait, a condition that must hold the whole time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import IO, Any, TypeVar

import pytest

T = TypeVar("T")


def poll_until(condition: Callable[[], T], timeout_s: float, interval_s: float = 0.1) -> T:
    """Poll ``condition`` until it returns something truthy or ``timeout_s`` has passed; its
    last value either way (falsy when the time ran out). ``interval_s`` 0 polls without pause,
    for a condition that blocks on its own (a consumer's poll)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval_s)


def wait_until(
    condition: Callable[[], T],
    timeout_s: float = 30.0,
    what: str | Callable[[], str] = "",
    interval_s: float = 0.1,
) -> T:
    """Poll ``condition`` until it returns something truthy (returned) or fail naming ``what``.

    The failure message carries the condition's last value, so a timed-out wait says how far
    it got. ``what`` may be a function, called at the failure (to read a log as it is then).
    """
    value = poll_until(condition, timeout_s, interval_s)
    if not value:
        named = what() if callable(what) else what
        pytest.fail(
            f"timed out after {timeout_s:g} s waiting for {named or condition} (last: {value!r})"
        )
    return value


def collect(poll: Callable[[], Iterable[T]], count: int, timeout_s: float) -> list[T]:
    """Call ``poll`` (which blocks a little on its own, e.g. a consumer's poll) and keep all it
    returns until there are ``count`` items or ``timeout_s`` has passed; all items gathered,
    fewer than ``count`` when the time ran out (the caller asserts how many it needs)."""
    gathered: list[T] = []

    def enough() -> bool:
        gathered.extend(poll())
        return len(gathered) >= count

    poll_until(enough, timeout_s, interval_s=0)
    return gathered


def polled(consumer: Any, timeout_ms: int = 200) -> list[Any]:
    """The records of one poll of a kafka-python consumer, all partitions: ``collect``'s source
    for a consumer."""
    return [record for batch in consumer.poll(timeout_ms=timeout_ms).values() for record in batch]


def read_lines_until(
    stream: IO[str], found: Callable[[str], T], timeout_s: float
) -> T | None:
    """Read ``stream`` line by line until ``found(line)`` is truthy (returned); None when the
    stream ends or ``timeout_s`` has passed (checked between lines: a silent stream blocks)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            return None
        if value := found(line):
            return value
    return None


def stays_true(
    condition: Callable[[], object], seconds: float, what: str, interval_s: float = 0.1
) -> None:
    """Check ``condition`` every ``interval_s`` for ``seconds`` (none when ``seconds`` <= 0);
    fail naming ``what`` the first time it does not hold."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if not value:
            pytest.fail(f"{what} stopped holding (was: {value!r})")
        time.sleep(interval_s)
