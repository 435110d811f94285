"""Fast identifiers and timestamps for the send hot path.

Same formats as :mod:`sagascope.instrumentation.contract` (``new_message_id``,
``format_time``), but built for one call per message: no syscall per id, and the RFC 3339
seconds prefix is formatted once per second.
"""

from __future__ import annotations

import random
import time

# Ids need uniqueness, not unpredictability; the random module reseeds itself in forked children.
_getrandbits = random.getrandbits
_time_ns = time.time_ns

# (second, formatted prefix) in one object, so threads never see a half-updated cache.
_cached: tuple[int, bytes] = (-1, b"")


def new_span_id() -> int:
    """A random non-zero 64-bit span id."""
    return _getrandbits(64) or 1


def new_trace_id() -> int:
    """A random non-zero 128-bit trace id."""
    return _getrandbits(128) or 1


def uuid7_prefix(ms: int) -> str:
    """The part of a UUIDv7 fixed by the millisecond ``ms``: ``tttttttt-tttt-7`` (time, version)."""
    return "%08x-%04x-7" % ((ms >> 16) & 0xFFFF_FFFF, ms & 0xFFFF)  # noqa: UP031


def uuid7_from(prefix: str) -> str:
    """A UUIDv7 string: ``prefix`` (from :func:`uuid7_prefix`) and 74 random bits.

    Formatted from three small random numbers in one step: the slicing of a 128-bit integer's
    hex string costs about twice as much, and this runs once per message (``%`` formatting
    is also faster than ``str.format`` or an f-string here).
    """
    return "%s%03x-%04x-%012x" % (  # noqa: UP031
        prefix, _getrandbits(12), 0x8000 | _getrandbits(14), _getrandbits(48)
    )


def message_id_at(ms: int) -> str:
    """A UUIDv7 string (RFC 9562) for the Unix time ``ms`` in milliseconds."""
    return uuid7_from(uuid7_prefix(ms))


def rfc3339_at(ms: int) -> bytes:
    """``ms`` (Unix milliseconds) as RFC 3339 UTC bytes, e.g. ``b"2026-11-22T10:15:30.123Z"``."""
    global _cached
    second, millis = divmod(ms, 1000)
    cached_second, prefix = _cached
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        _cached = (second, prefix)
    return b"%s.%03dZ" % (prefix, millis)


def now_ns() -> int:
    return _time_ns()
