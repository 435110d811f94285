"""The flow of one saga: find it by saga, message or trace id, order its messages causally.

The rows come from ClickHouse by primary key (saga id) or bloom-filter index (message and
trace id); ordering a single saga's few messages along its causation graph is presentation,
done here.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sagascope.queries.results import Flow, FlowMessage

FLOW_COLUMNS = (
    "message_id, causation_id, saga_id, saga_type, trace_id, span_id, kind, type, source, "
    "step, saga_status, compensates, event_time, kafka_time, topic, partition, offset, "
    "headers, headers_elided, payload, payload_size, payload_truncated, correlation, parse_error"
)

#: Upper bound of rows a flow shows; a saga with more is cut (and says so in the log).
MAX_FLOW_ROWS = 100_000


def _arrival_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["kafka_time"], row["topic"], row["partition"], row["offset"])


def fold_duplicates(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per ``message_id`` (the first to arrive), with its copies counted."""
    firsts: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for row in sorted(rows, key=_arrival_key):
        copy = (row["topic"], int(row["partition"]), int(row["offset"]))
        mid = row["message_id"]
        if mid and mid in firsts:
            first = firsts[mid]
            first["duplicates"] += 1
            first["copies"].append(copy)
            continue
        kept = dict(row)
        kept["duplicates"] = 0
        kept["copies"] = [copy]
        if mid:
            firsts[mid] = kept
        out.append(kept)
    return out


def causal_order(rows: Sequence[dict[str, Any]]) -> list[FlowMessage]:
    """Messages with every cause before its consequences, else by event time.

    Duplicates (same ``message_id``) are folded first; each message says how far its clock
    ran ahead of its cause's (``skew_s``) and how deep in the causation graph it sits.
    """
    rows = fold_duplicates(rows)
    by_id = {r["message_id"]: i for i, r in enumerate(rows) if r["message_id"]}
    parents = [by_id.get(r["causation_id"]) if r["causation_id"] else None for r in rows]
    placed, depth = _kahn_order(rows, parents)
    out: list[FlowMessage] = []
    for i in placed:
        r = rows[i]
        parent = parents[i]
        skew = 0.0
        if parent is not None:
            lead = (rows[parent]["event_time"] - r["event_time"]).total_seconds()
            skew = max(lead, 0.0)
        out.append(FlowMessage.from_row(
            r,
            cause_missing=bool(r["causation_id"]) and parent is None,
            skew_s=skew,
            depth=depth.get(i, 0),
        ))
    return out


def _kahn_order(
    rows: Sequence[dict[str, Any]], parents: Sequence[int | None]
) -> tuple[list[int], dict[int, int]]:
    """(row indexes in causal order, depth of each row below its root).

    Kahn's algorithm with the ready messages in a heap keyed by event time: a consequence
    waits for its cause whatever the clocks say. A cause outside the flow counts as absent;
    a cycle (bad data) is broken at its earliest message.
    """
    children: dict[int, list[int]] = {}
    waiting: dict[int, int] = {}
    for i, parent in enumerate(parents):
        if parent is not None and parent != i:
            children.setdefault(parent, []).append(i)
            waiting[i] = 1

    def key(i: int) -> tuple[Any, ...]:
        r = rows[i]
        return (r["event_time"], *_arrival_key(r), i)

    ready = [key(i) for i in range(len(rows)) if i not in waiting]
    heapq.heapify(ready)
    placed: list[int] = []
    done: set[int] = set()
    depth: dict[int, int] = {}
    while len(placed) < len(rows):
        if not ready:
            # Only cycles remain: release their earliest message.
            earliest = min((i for i in range(len(rows)) if i not in done), key=key)
            waiting.pop(earliest, None)
            heapq.heappush(ready, key(earliest))
        i = heapq.heappop(ready)[-1]
        if i in done:
            continue
        done.add(i)
        placed.append(i)
        for child in children.get(i, ()):
            if child in done:
                continue
            depth[child] = depth.get(i, 0) + 1
            waiting.pop(child, None)
            heapq.heappush(ready, key(child))
    return placed, depth


#: The least a consequence is drawn after its cause when a clock put it before.
MIN_CAUSAL_GAP = timedelta(milliseconds=1)


def causal_times(flow: Flow) -> list[datetime]:
    """A time per message (in the flow's order) that never puts a consequence before its cause.

    Like Jaeger's clock-skew adjuster: a message whose event time precedes its cause's
    (``skew_s > 0``, a clock running behind) is moved to just after the cause, halfway to its
    own earliest consequence when there is room; every other message keeps its event time.
    """
    index = {m.message_id: i for i, m in enumerate(flow.messages) if m.message_id}
    children: dict[int, list[int]] = {}
    for i, m in enumerate(flow.messages):
        parent = index.get(m.causation_id) if m.causation_id else None
        if parent is not None and parent != i:
            children.setdefault(parent, []).append(i)
    times = [m.event_time for m in flow.messages]
    for i, m in enumerate(flow.messages):
        parent = index.get(m.causation_id) if m.causation_id else None
        if parent is None or parent >= i or times[i] > times[parent]:
            continue
        floor = times[parent] + MIN_CAUSAL_GAP
        later = [times[c] for c in children.get(i, ()) if times[c] > floor]
        times[i] = floor + (min(later) - floor) / 2 if later else floor
    return times
