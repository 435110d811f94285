"""Fast identifiers for the send hot path, and the ``ce_time`` of the current millisecond.

Same formats as :mod:`sagascope.instrumentation.contract` (``new_message_id``; ``ce_time`` is
the contract's own ``rfc3339_ms``), but built for one call per message: no syscall per id, and
the time text made once per millisecond.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Iterator

from sagascope.instrumentation.contract import CE_TIME, rfc3339_ms

# Ids need uniqueness, not unpredictability; the random module reseeds itself in forked children.
_getrandbits = random.getrandbits
_time_ns = time.time_ns


def new_span_id() -> int:
    """A random non-zero 64-bit span id."""
    return _getrandbits(64) or 1


def new_trace_id() -> int:
    """A random non-zero 128-bit trace id."""
    return _getrandbits(128) or 1


def uuid7_tick(ms: int) -> tuple[bytes, Iterator[int]]:
    """What the UUIDv7s of the millisecond ``ms`` share, and where their last 48 bits come from.

    Returns ``tttttttt-tttt-7aaa-vbbb-`` (the time, version, 12 random bits of ``rand_a``, the
    variant and 14 random bits of ``rand_b``) and a counter starting at a random 47-bit
    number: each id is the prefix and the counter's next value in 12 hex digits. This is RFC
    9562's "monotonic random" method (section 6.2, method 2): the first id of a millisecond
    carries 73 random bits, the next ones count up from it, so ids from one producer are
    unique and sort in the order they were made, and ids of two processes collide only if
    both drew the same 26 bits and overlapping counter ranges in the same millisecond. A
    message costs one ``next`` and one ``%``-format, not 74 fresh random bits spelled out.
    ``next`` on the counter is atomic under the GIL, so threads sharing it get distinct ids.
    """
    rand = _getrandbits(26)
    prefix = b"%08x-%04x-7%03x-%04x-" % (
        (ms >> 16) & 0xFFFF_FFFF, ms & 0xFFFF, rand >> 14, 0x8000 | (rand & 0x3FFF)
    )
    return prefix, itertools.count(_getrandbits(47))


#: (ms, ``uuid7_tick(ms)``'s prefix and counter, the ``ce_time`` header for ms): the current
#: millisecond's, shared by every producer of the process. Replaced whole (threads never see
#: half of one) and forgotten in a forked child, so a child never counts on from its parent.
Tick = tuple[int, bytes, Iterator[int], tuple[str, bytes]]
_NO_TICK: Tick = (-1, b"", iter(()), ("", b""))
current_tick: list[Tick] = [_NO_TICK]
os.register_at_fork(after_in_child=lambda: current_tick.__setitem__(0, _NO_TICK))


def tick_at(ms: int) -> Tick:
    """The tick of millisecond ``ms``, made current (sends call this when the ms changed)."""
    prefix, counter = uuid7_tick(ms)
    tick = (ms, prefix, counter, (CE_TIME, rfc3339_ms(ms).encode()))
    current_tick[0] = tick
    return tick


def message_id_at(ms: int) -> str:
    """A UUIDv7 string (RFC 9562) for the Unix time ``ms`` in milliseconds."""
    prefix, counter = uuid7_tick(ms)
    return (b"%s%012x" % (prefix, next(counter))).decode()


def now_ns() -> int:
    return _time_ns()
