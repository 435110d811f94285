"""Overview's charts, drawn on the server as SVG (:mod:`svg`): the browser loads no chart
library for the page a person opens first (a Vega-Lite chart cost a cold visit 0.6-0.9 s,
bench_browser_parts.py). Pure functions, data in, SVG out. The process map's variant bars too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape

import pandas as pd

from sagascope.dashboard import svg
from sagascope.dashboard.figures import STATUS_COLORS, STATUS_ORDER, bars
from sagascope.queries.formatting import format_duration

#: Percentiles the cycle-time chart offers (column -> label).
PERCENTILES = {"p50_s": "p50", "p90_s": "p90", "p95_s": "p95", "p99_s": "p99"}


def status_bars(counts: Mapping[str, int], link: Callable[[str], str]) -> str:
    """Sagas by status, one bar per status present, in the canonical order, each opening
    ``link(status)``."""
    present = [s for s in STATUS_ORDER if counts.get(s)] + sorted(
        s for s, n in counts.items() if n and s not in STATUS_ORDER)
    if not present:
        return svg.empty("No sagas in this range", width=_STATUS_WIDTH)
    return bars(present, [float(counts[s]) for s in present],
                colors=[STATUS_COLORS.get(s, "#495057") for s in present],
                title="Sagas by status (click a bar to list them)", width=_STATUS_WIDTH,
                link=link)


def zero_filled(frame: pd.DataFrame, columns: list[str], width_s: int, start: datetime | None,
                end: datetime) -> pd.DataFrame:
    """One row per bucket from ``start`` (else the first bucket with data) to ``end``: a
    bucket with no data is 0, never the previous value carried on."""
    if frame.empty and start is None:
        return frame
    buckets = pd.to_datetime(frame["bucket"], utc=True) if not frame.empty else pd.Series(
        [], dtype="datetime64[ns, UTC]")
    width = pd.Timedelta(seconds=width_s)
    first = pd.Timestamp(start).floor(width) if start is not None else buckets.min()
    # The bucket holding the end; an end on a boundary closes the bucket before it.
    last = (pd.Timestamp(end) - pd.Timedelta(microseconds=1)).floor(width)
    index = pd.date_range(first, last, freq=width)
    values = frame.assign(bucket=buckets).groupby("bucket")[columns].sum() if not frame.empty \
        else pd.DataFrame(columns=columns)
    full = values.reindex(index, fill_value=0).rename_axis("bucket").reset_index()
    for column in columns:
        full[column] = full[column].fillna(0).astype(int)
    return full


def throughput_bars(frame: pd.DataFrame, width_s: int, start: datetime | None,
                    end: datetime, bucket_text: str) -> str:
    """Sagas started and finished per bucket (columns ``bucket``, ``sagas_started``,
    ``sagas_finished``) as steps, every bucket drawn (zeros too), the last one shaded while
    it fills; a bucket's counts on hover."""
    full = zero_filled(frame, ["sagas_started", "sagas_finished"], width_s, start, end)
    if full.empty:
        return svg.empty("No traffic in this range", width=_THROUGHPUT_WIDTH)
    width = pd.Timedelta(seconds=width_s)
    buckets = [pd.Timestamp(b) for b in full["bucket"]]
    partial = buckets[-1] + width > pd.Timestamp(end)
    title = f"Sagas started / finished per {bucket_text}"
    if partial:
        title += " · shaded: the last bucket, still filling"
    started, finished = list(full["sagas_started"]), list(full["sagas_finished"])
    x = _time_scale(buckets[0], buckets[-1] + width, _THROUGHPUT_WIDTH)
    y = svg.Scale(0.0, max(max(started), max(finished), 1) * 1.1, _TOP + _PLOT, _TOP)
    parts = [svg.text(0, 18, title, size=14, weight="600"),
             *_value_axis(y, x, lambda v: f"{v:,.0f}"), *_time_axis(x, _TOP + _PLOT + 16)]
    if partial:
        parts.append(svg.rect(x(buckets[-1].timestamp()), _TOP, x.right - x(buckets[-1].timestamp()),
                              _PLOT, "#adb5bd", opacity=0.3, extra=' class="filling"',
                              hover="the last bucket, still filling"))
    for name, values, color in (("started", started, _STARTED), ("finished", finished, _FINISHED)):
        steps = [(x(t), y(float(v))) for b, v in zip(buckets, values, strict=True)
                 for t in (b.timestamp(), (b + width).timestamp())]
        parts.append(_polyline(steps, color, name))
    for b, s, f in zip(buckets, started, finished, strict=True):
        left = x(b.timestamp())
        parts.append(svg.rect(left, _TOP, x((b + width).timestamp()) - left, _PLOT, "#fff",
                              opacity=0, hover=f"{_when(b)}: {s:,} started, {f:,} finished"))
    parts += _legend([("started", _STARTED), ("finished", _FINISHED)], _TOP + _PLOT + 36)
    return svg.document(_THROUGHPUT_WIDTH, _TOP + _PLOT + 46, parts, label=title)


def cycle_time_multiples(frame: pd.DataFrame, percentile: str, width_s: int,
                         start: datetime | None, end: datetime, bucket_text: str) -> str:
    """One small chart per saga type: the chosen cycle-time percentile per bucket of finishing
    time (columns ``bucket``, ``saga_type``, ``count`` and the percentile's column), each on
    its own scale. Buckets where no saga finished are gaps, not zeros (no time was measured
    there)."""
    if frame.empty or percentile not in frame:
        return svg.empty("No finished sagas in this range", width=_WIDE)
    rows = frame[frame["saga_type"] != "*"] if (frame["saga_type"] != "*").any() else frame
    data = rows.assign(bucket=pd.to_datetime(rows["bucket"], utc=True),
                       value=rows[percentile].astype(float)).sort_values("bucket")
    label = PERCENTILES.get(percentile, percentile)
    title = f"Cycle time {label} per {bucket_text}, by saga type"
    width = pd.Timedelta(seconds=width_s)
    first = pd.Timestamp(start).floor(width) if start is not None else data["bucket"].min()
    x = _time_scale(first, pd.Timestamp(end), _WIDE)
    parts = [svg.text(0, 18, title, size=14, weight="600")]
    top = _TOP
    for saga_type, points in data.groupby("saga_type", sort=True):
        parts.append(svg.text(x.left, top + 4, str(saga_type), weight="600",
                              extra=' class="panel"'))
        y = svg.Scale(0.0, float(points["value"].max()) * 1.1 or 1.0, top + 10 + _PANEL, top + 10)
        parts += _value_axis(y, x, format_duration)
        parts += _time_axis(x, top + 10 + _PANEL + 16)
        line: list[tuple[float, float]] = []
        dots: list[str] = []
        previous: pd.Timestamp | None = None
        for row in points.itertuples():
            if previous is not None and row.bucket - previous > width and line:
                parts.append(_polyline(line, _CYCLE, str(saga_type)))
                line = []  # no sagas finished in between: a gap
            line.append((x(row.bucket.timestamp()), y(row.value)))
            previous = row.bucket
            dots.append(_dot(*line[-1], f"{_when(row.bucket)}: {label} "
                             f"{format_duration(row.value)} ({int(row.count):,} finished)"))
        parts.append(_polyline(line, _CYCLE, str(saga_type)))
        # The dots' colour once for the panel: this SVG is sent as Markdown on every visit.
        parts.append(f'<g fill="{_CYCLE}" class="points">{"".join(dots)}</g>')
        top += _PANEL + 48
    return svg.document(_WIDE, top, parts, label=title)


#: Layout, in the SVG's own pixels (about the page's: the column of the status bars and of
#: throughput, the whole width for cycle times): widths, a plot's left edge and right margin,
#: the first plot's top, a plot's and a small multiple's height; the colours of started,
#: finished and cycle time.
_STATUS_WIDTH = 400
_THROUGHPUT_WIDTH = 600
_WIDE = 960
_LEFT, _MARGIN = 74.0, 14.0
_TOP = 40
_PLOT = 180
_PANEL = 90
_STARTED, _FINISHED, _CYCLE = "#4c6ef5", "#2f9e44", "#3b5bdb"


def _time_scale(first: pd.Timestamp, until: pd.Timestamp, width: int) -> svg.Scale:
    return svg.Scale(first.timestamp(), until.timestamp(), _LEFT, width - _MARGIN)


def _when(moment: pd.Timestamp) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _time_axis(x: svg.Scale, y: float) -> list[str]:
    """Five time labels under a plot, as precise as the range needs (UTC)."""
    span_s = x.high - x.low
    shape = "%H:%M:%S" if span_s < 600 else "%H:%M" if span_s <= 86400 else "%m-%d %H:%M"
    ticks = x.ticks()
    return [svg.text(x(t), y, datetime.fromtimestamp(t, UTC).strftime(shape), size=11,
                     color=svg.MUTED,
                     anchor="start" if i == 0 else "end" if i == len(ticks) - 1 else "middle")
            for i, t in enumerate(ticks)]


def _value_axis(y: svg.Scale, x: svg.Scale, shown: Callable[[float], str]) -> list[str]:
    """Three grid lines across a plot (``y`` maps values to its bottom..top), labelled."""
    return [svg.line(x.left, y(v), x.right, y(v)) + svg.text(_LEFT - 6, y(v) + 4, shown(v),
                                                           size=11, color=svg.MUTED,
                                                           anchor="end")
            for v in y.ticks(3)]


def _polyline(points: Sequence[tuple[float, float]], color: str, name: str) -> str:
    joined = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    return (f'<polyline points="{joined}" fill="none" stroke="{color}" stroke-width="2" '
            f'stroke-linejoin="round" class="series" data-series="{escape(name)}"/>')


def _dot(px: float, py: float, hover: str) -> str:
    return f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3">{svg.tooltip(hover)}</circle>'


def _legend(entries: Sequence[tuple[str, str]], y: float) -> list[str]:
    parts, left = [], _LEFT
    for name, color in entries:
        parts += [svg.line(left, y - 4, left + 18, y - 4, color=color, width=3),
                  svg.text(left + 24, y, name, color=svg.MUTED)]
        left += 24 + 8 * len(name) + 24
    return parts


def variant_bars(variants: pd.DataFrame) -> str:
    """Variants by frequency (columns ``activities``, the activity sequence, and ``count``),
    most frequent first, labelled V1, V2, ... as the variants table is; the path on hover."""
    if variants.empty:
        return svg.empty("No variants in this range", width=_STATUS_WIDTH)
    frame = variants.sort_values("count", ascending=False).reset_index(drop=True)
    paths = [" → ".join(map(str, a)) if isinstance(a, list | tuple) else str(a)
             for a in frame["activities"]]
    counts = [float(c) for c in frame["count"]]
    return bars([f"V{i + 1}" for i in range(len(frame))], counts,
                colors=[_CYCLE] * len(frame), title="Variants", width=_STATUS_WIDTH,
                hovers=[f"V{i + 1}: {int(c):,} sagas\n{path}"
                        for i, (c, path) in enumerate(zip(counts, paths, strict=True))])
