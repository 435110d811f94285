"""Text for people: the one duration formatter of the dashboard, the CLI and alert texts."""

from __future__ import annotations

import math

__all__ = ["format_duration", "format_span_duration"]


def format_duration(seconds: float | None) -> str:
    """``0.25 s``, ``1 min 05 s``, ``2 h 03 min``, ``3 d 4 h``; empty for None/NaN."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    s = float(seconds)
    sign = "-" if s < 0 else ""
    s = abs(s)
    if s < 10:
        return f"{sign}{s:.2f} s"
    if s < 60:
        return f"{sign}{s:.0f} s"
    if s < 3600:
        return f"{sign}{int(s // 60)} min {int(s % 60):02d} s"
    if s < 86400:
        return f"{sign}{int(s // 3600)} h {int(s % 3600 // 60):02d} min"
    return f"{sign}{int(s // 86400)} d {int(s % 86400 // 3600)} h"


def format_span_duration(seconds: float) -> str:
    """A handler's or a span's duration: ``350 µs`` and ``12.5 ms`` below a second (where
    :func:`format_duration` would say ``0.00 s``), :func:`format_duration` above."""
    if seconds < 0.001:
        return f"{seconds * 1_000_000:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return format_duration(seconds)
