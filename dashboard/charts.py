"""Light charts: Vega-Lite specs (pure functions, data in, spec out) for the pages a person
opens most. Plotly's script is ~4.7 MB that a browser must parse before drawing anything;
Vega-Lite's is a sixth of it, which is most of a first visit's wait (bench_browser.py).
The flow page's swimlane and trace waterfall are SVG drawn on the server (:mod:`svg`).

Bars that lead somewhere carry a point selection named :data:`PICK`: a page passes
``on_select="rerun"`` and reads the picked row with :func:`picked`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from sagascope.dashboard.figures import STATUS_COLORS, STATUS_ORDER
from sagascope.queries.formatting import format_duration

#: The selection a clickable chart declares (``event.selection[PICK]``).
PICK = "pick"
#: Percentiles the cycle-time chart offers (column -> label).
PERCENTILES = {"p50_s": "p50", "p90_s": "p90", "p95_s": "p95", "p99_s": "p99"}
_FONT = "Inter, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"
Spec = dict[str, Any]


def _spec(rows: list[dict[str, Any]], *, title: str = "",
          height: int | str | dict[str, int] = 280,
          **parts: Any) -> Spec:
    spec: Spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "data": {"values": rows},
        "height": height,
        "config": {"font": _FONT, "view": {"stroke": None},
                   "axis": {"labelFontSize": 12, "titleFontSize": 12, "titleColor": "#5c6370"},
                   "legend": {"orient": "bottom", "labelFontSize": 12, "title": None}},
        **parts,
    }
    if title:
        spec["title"] = {"text": title, "anchor": "start", "fontSize": 15, "fontWeight": 600}
    return spec


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict("records"):
        out.append({k: (v.isoformat() if isinstance(v, datetime | pd.Timestamp) else v)
                    for k, v in row.items()})
    return out


def empty_chart(message: str) -> Spec:
    """A blank chart that says why it is blank."""
    return _spec([{"text": message}], height=120, mark={"type": "text", "fontSize": 14,
                                                        "color": "#868e96"},
                 encoding={"text": {"field": "text"}})


def picked(event: Any, field: str) -> str | None:
    """The ``field`` of the bar a click picked in a chart with the :data:`PICK` selection."""
    try:
        points = event.selection[PICK]
    except (AttributeError, KeyError, TypeError):
        return None
    if not points:
        return None
    value = points[0].get(field)
    return None if value is None else str(value)


def status_bars(counts: Mapping[str, int]) -> Spec:
    """Sagas by status, one clickable bar per status present, in the canonical order."""
    present = [s for s in STATUS_ORDER if counts.get(s)] + sorted(
        s for s, n in counts.items() if n and s not in STATUS_ORDER)
    if not present:
        return empty_chart("No sagas in this range")
    rows = [{"status": s, "sagas": int(counts[s])} for s in present]
    color = {"field": "status", "type": "nominal", "legend": None,
             "scale": {"domain": present,
                       "range": [STATUS_COLORS.get(s, "#495057") for s in present]}}
    return _spec(
        rows, title="Sagas by status (click a bar to list them)", height={"step": 30},
        encoding={"y": {"field": "status", "type": "nominal", "sort": present, "title": None},
                  "x": {"field": "sagas", "type": "quantitative", "title": None}},
        layer=[
            {"params": [{"name": PICK, "select": {"type": "point", "fields": ["status"]}}],
             "mark": {"type": "bar", "cursor": "pointer", "cornerRadiusEnd": 3},
             "encoding": {"color": color, "tooltip": [{"field": "status"},
                                                      {"field": "sagas", "format": ","}]}},
            {"mark": {"type": "text", "align": "left", "dx": 4, "color": "#343a40"},
             "encoding": {"text": {"field": "sagas", "format": ","}}},
        ],
    )


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
                    end: datetime, bucket_text: str) -> Spec:
    """Sagas started and finished per bucket (columns ``bucket``, ``sagas_started``,
    ``sagas_finished``), every bucket drawn (zeros too), the last one marked while it fills."""
    full = zero_filled(frame, ["sagas_started", "sagas_finished"], width_s, start, end)
    if full.empty:
        return empty_chart("No traffic in this range")
    last = full["bucket"].max()
    partial = last + pd.Timedelta(seconds=width_s) > pd.Timestamp(end)
    long = full.melt(id_vars="bucket", value_vars=["sagas_started", "sagas_finished"],
                     var_name="measure", value_name="sagas")
    long["measure"] = long["measure"].str.replace("sagas_", "", regex=False)
    title = f"Sagas started / finished per {bucket_text}"
    layers: list[Spec] = [{
        "mark": {"type": "line", "interpolate": "step-after", "point": {"size": 14}},
        "encoding": {
            "x": {"field": "bucket", "type": "temporal", "title": None},
            "y": {"field": "sagas", "type": "quantitative",
                  "title": f"sagas per {bucket_text}"},
            "color": {"field": "measure", "type": "nominal",
                      "scale": {"domain": ["started", "finished"],
                                "range": ["#4c6ef5", "#2f9e44"]}},
            "tooltip": [{"field": "bucket", "type": "temporal", "format": "%Y-%m-%d %H:%M:%S"},
                        {"field": "measure"}, {"field": "sagas", "format": ","}],
        },
    }]
    if partial:
        title += " · shaded: the last bucket, still filling"
        until = last + pd.Timedelta(seconds=width_s)
        layers.insert(0, {
            "data": {"values": [{"from": last.isoformat(), "until": until.isoformat()}]},
            "mark": {"type": "rect", "color": "#adb5bd", "opacity": 0.25},
            "encoding": {"x": {"field": "from", "type": "temporal"},
                         "x2": {"field": "until"}},
        })
    return _spec(_records(long), title=title, height=260, layer=layers)


def cycle_time_multiples(frame: pd.DataFrame, percentile: str, width_s: int,
                         start: datetime | None, end: datetime, bucket_text: str) -> Spec:
    """One small chart per saga type: the chosen cycle-time percentile per bucket of finishing
    time (columns ``bucket``, ``saga_type``, ``count`` and the percentile's column). Buckets
    where no saga finished are gaps, not zeros (no time was measured there)."""
    if frame.empty or percentile not in frame:
        return empty_chart("No finished sagas in this range")
    rows = frame[frame["saga_type"] != "*"] if (frame["saga_type"] != "*").any() else frame
    data = rows.assign(
        bucket=pd.to_datetime(rows["bucket"], utc=True),
        value=rows[percentile].astype(float),
        shown=[format_duration(v) for v in rows[percentile]],
    )[["bucket", "saga_type", "count", "value", "shown"]]
    label = PERCENTILES.get(percentile, percentile)
    types = sorted(data["saga_type"].unique())
    low = pd.Timestamp(start).isoformat() if start is not None else None
    domain = {"domain": [low, pd.Timestamp(end).isoformat()]} if low else {}
    return _spec(
        _records(data), title=f"Cycle time {label} per {bucket_text}, by saga type",
        height=110, facet={"row": {"field": "saga_type", "type": "nominal", "title": None,
                                   "sort": types, "header": {"labelAngle": 0,
                                                             "labelAlign": "left",
                                                             "labelFontSize": 12}}},
        resolve={"scale": {"y": "independent"}},
        spec={
            "height": 110,
            "width": 760,
            "mark": {"type": "line", "point": {"size": 18}, "color": "#3b5bdb"},
            "encoding": {
                "x": {"field": "bucket", "type": "temporal", "title": None,
                      "scale": domain},
                "y": {"field": "value", "type": "quantitative", "title": f"{label} (s)",
                      "scale": {"zero": True}},
                "tooltip": [{"field": "bucket", "type": "temporal",
                             "format": "%Y-%m-%d %H:%M"},
                            {"field": "shown", "title": label},
                            {"field": "count", "title": "finished", "format": ","}],
            },
        },
    )


def variant_bars(variants: pd.DataFrame) -> Spec:
    """Variants by frequency (columns ``activities``, the activity sequence, and ``count``),
    most frequent first, labelled V1, V2, ... as the variants table is; the path on hover."""
    if variants.empty:
        return empty_chart("No variants in this range")
    frame = variants.sort_values("count", ascending=False).reset_index(drop=True)
    rows = [{"variant": f"V{i + 1}", "count": int(c),
             "path": " → ".join(map(str, a)) if isinstance(a, list | tuple) else str(a)}
            for i, (a, c) in enumerate(zip(frame["activities"], frame["count"], strict=True))]
    order = [r["variant"] for r in rows]
    return _spec(
        rows, title="Variants", height={"step": 24},
        encoding={"y": {"field": "variant", "type": "nominal", "sort": order, "title": None},
                  "x": {"field": "count", "type": "quantitative", "title": "sagas"}},
        layer=[
            {"mark": {"type": "bar", "color": "#3b5bdb", "cornerRadiusEnd": 3},
             "encoding": {"tooltip": [{"field": "variant"}, {"field": "count", "format": ","},
                                      {"field": "path"}]}},
            {"mark": {"type": "text", "align": "left", "dx": 4, "color": "#343a40"},
             "encoding": {"text": {"field": "count", "format": ","}}},
        ],
    )
