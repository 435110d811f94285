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

_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_B_MASK = (1 << 62) - 1

# (second, formatted prefix) in one object, so threads never see a half-updated cache.
_cached: tuple[int, bytes] = (-1, b"")


def new_span_id() -> int:
    """A random non-zero 64-bit span id."""
    return _getrandbits(64) or 1


def new_trace_id() -> int:
    """A random non-zero 128-bit trace id."""
    return _getrandbits(128) or 1


def message_id_at(ms: int) -> str:
    """A UUIDv7 string (RFC 9562) for the Unix time ``ms`` in milliseconds."""
    rand = _getrandbits(74)
    value = (
        ((ms & 0xFFFF_FFFF_FFFF) << 80)
        | _VERSION_7
        | ((rand >> 62) << 64)
        | _VARIANT
        | (rand & _RAND_B_MASK)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
