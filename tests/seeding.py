"""Seed the store with realistic ``messages`` rows, for tests of the query layer, alerter, dashboard.

Two levels:

- :class:`SagaScript` writes one saga message by message, as services would have sent it
  (causation chain, traces, topics, clock skew, duplicates), and :func:`seed` inserts scripts
  through ``Store.insert`` (so the saga-state view is fed exactly as by the collector).
- :func:`seed_scenarios` inserts one saga of every status of an order-fulfillment flow and
  returns their ids, for tests that just need "a bit of everything".

    from seeding import SagaScript, seed, seed_scenarios
    saga = SagaScript("order-1", "order-fulfillment", start=t0)
    cmd = saga.command("ReserveStock", source="orchestrator", step="reserve-stock")
    saga.event("StockReserved", source="inventory", step="reserve-stock", after_s=2)
    saga.event("OrderCompleted", source="orchestrator", status="completed")
    seed(store, saga)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sagascope.store.headers import elide
from sagascope.store.timetext import rfc3339_ms

ORDER_FLOW = "order-fulfillment"

_offsets: dict[tuple[str, int], itertools.count[int]] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _next_offset(topic: str, partition: int) -> int:
    counter = _offsets.setdefault((topic, partition), itertools.count())
    return next(counter)


def _hex(n_bytes: int) -> str:
    return uuid.uuid4().hex[: n_bytes * 2].rjust(n_bytes * 2, "0")


def message_row(
    *,
    saga_id: str,
    saga_type: str,
    type: str,
    source: str,
    event_time: datetime,
    kind: str = "event",
    step: str = "",
    saga_status: str = "",
    compensates: str = "",
    causation_id: str = "",
    message_id: str | None = None,
    trace_id: str | None = None,
    span_id: str | None = None,
    topic: str | None = None,
    partition: int = 0,
    offset: int | None = None,
    kafka_time: datetime | None = None,
    payload: Mapping[str, Any] | str | None = None,
    headers: Mapping[str, str] | None = None,
    correlation: str = "headers",
) -> dict[str, Any]:
    """One ``messages`` row as the collector stores it.

    The message carries the full contract headers (``ce_time`` as the instrumentation writes
    it, in milliseconds) plus ``headers``; the row keeps, as the collector does, only those no
    column reproduces (``_headers.elide``), the others as bits of ``headers_elided``.
    ``event_time`` is cut to the millisecond, the precision ``ce_time`` and the column have.
    """
    message_id = message_id if message_id is not None else str(uuid.uuid4())
    trace_id = trace_id if trace_id is not None else _hex(16)
    span_id = span_id if span_id is not None else _hex(8)
    topic = topic or f"{source}.{kind}s"
    if event_time.tzinfo is None:
        event_time = event_time.replace(tzinfo=UTC)
    event_ms = (event_time - _EPOCH) // _MS
    event_time = _EPOCH + event_ms * _MS
    kafka_time = kafka_time or event_time
    body = payload if isinstance(payload, str) else json.dumps(payload or {"saga": saga_id})
    data = body.encode()
    ce = {
        "traceparent": f"00-{trace_id}-{span_id}-01",
        "ce_specversion": "1.0",
        "ce_id": message_id,
        "ce_source": source,
        "ce_type": type,
        "ce_time": rfc3339_ms(event_ms),
        "ce_sagaid": saga_id,
        "ce_sagatype": saga_type,
        "ce_kind": kind,
    }
    for name, value in (
        ("ce_causationid", causation_id),
        ("ce_step", step),
        ("ce_sagastatus", saga_status),
        ("ce_compensates", compensates),
    ):
        if value:
            ce[name] = value
    ce.update(headers or {})
    row: dict[str, Any] = {
        "topic": topic,
        "partition": partition,
        "offset": _next_offset(topic, partition) if offset is None else offset,
        "kafka_time": kafka_time,
        "event_time": event_time,
        "ingest_time": kafka_time + timedelta(milliseconds=5),
        "kafka_key": saga_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "saga_id": saga_id,
        "saga_type": saga_type,
        "message_id": message_id,
        "causation_id": causation_id,
        "kind": kind,
        "type": type,
        "source": source,
        "step": step,
        "saga_status": saga_status,
        "compensates": compensates,
        "headers": ce,
        "headers_elided": 0,
        "payload": body,
        "payload_size": len(data),
        "payload_sha256": hashlib.sha256(data).hexdigest(),
        "payload_truncated": False,
        "correlation": correlation,
        "parse_error": "",
    }
    row["headers"], row["headers_elided"] = elide(ce, row, event_ms)
    return row


@dataclass
class SagaScript:
    """One saga written message by message; each message is caused by the previous by default.

    ``clock`` advances by ``after_s`` per message (the true time); a message's ``event_time`` is
    the true time plus ``skew_s`` (a service whose clock is wrong), its ``kafka_time`` the true
    time plus ``arrival_delay_s`` (late arrival).
    """

    saga_id: str
    saga_type: str = ORDER_FLOW
    start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(minutes=10))
    trace_id: str = field(default_factory=lambda: _hex(16))
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock = self.start

    @property
    def last_message_id(self) -> str:
        return str(self.rows[-1]["message_id"]) if self.rows else ""

    def send(
        self,
        type: str,
        source: str,
        *,
        kind: str = "event",
        step: str = "",
        after_s: float = 1.0,
        status: str = "",
        compensates: str = "",
        caused_by: str | None = None,
        skew_s: float = 0.0,
        arrival_delay_s: float = 0.0,
        topic: str | None = None,
        payload: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
        new_trace: bool = False,
    ) -> str:
        """Append one message; returns its message id. ``caused_by`` defaults to the previous."""
        self.clock = self.clock + timedelta(seconds=after_s)
        if new_trace:
            self.trace_id = _hex(16)
        row = message_row(
            saga_id=self.saga_id,
            saga_type=self.saga_type,
            type=type,
            source=source,
            kind=kind,
            step=step,
            saga_status=status,
            compensates=compensates,
            causation_id=self.last_message_id if caused_by is None else caused_by,
            trace_id=self.trace_id,
            event_time=self.clock + timedelta(seconds=skew_s),
            kafka_time=self.clock + timedelta(seconds=arrival_delay_s),
            topic=topic,
            payload=payload,
            headers=headers,
        )
        self.rows.append(row)
        return str(row["message_id"])

    def command(self, type: str, source: str, **kwargs: Any) -> str:
        return self.send(type, source, kind="command", **kwargs)

    def event(self, type: str, source: str, **kwargs: Any) -> str:
        return self.send(type, source, kind="event", **kwargs)

    def duplicate(self, message_id: str | None = None, *, after_s: float = 0.5) -> None:
        """Redeliver a message (same ``ce_id``, new offset), as a producer retry would."""
        original = next(
            r for r in self.rows if r["message_id"] == (message_id or self.last_message_id)
        )
        copy = dict(original)
        copy["offset"] = _next_offset(copy["topic"], copy["partition"])
        copy["kafka_time"] = original["kafka_time"] + timedelta(seconds=after_s)
        copy["ingest_time"] = copy["kafka_time"] + timedelta(milliseconds=5)
        self.rows.append(copy)


def seed(store: Any, *sagas: SagaScript | Iterable[SagaScript]) -> int:
    """Insert the scripts' rows into ``messages``, in arrival order; returns the row count."""
    rows: list[dict[str, Any]] = []
    for item in sagas:
        for saga in [item] if isinstance(item, SagaScript) else item:
            rows.extend(saga.rows)
    rows.sort(key=lambda r: (r["kafka_time"], r["topic"], r["offset"]))
    return int(store.insert("messages", rows)) if rows else 0


# ---- a realistic order-fulfillment flow ----------------------------------------------------


def order_saga(
    saga_id: str,
    outcome: str = "completed",
    *,
    start: datetime | None = None,
    step_s: float = 1.0,
    inventory_skew_s: float = 0.0,
) -> SagaScript:
    """An order-fulfillment saga (orchestrated) ending in ``outcome``.

    ``outcome``: ``completed``, ``failed`` (payment declined, no compensation),
    ``compensating`` (refund asked, not confirmed), ``compensated``, ``running`` (waiting for
    payment, recent) or ``stalled`` (same as running; make it old or the threshold small).
    ``inventory_skew_s`` shifts the inventory service's clock (e.g. -30 for 30 s behind).
    """
    saga = SagaScript(saga_id, ORDER_FLOW, start=start or datetime.now(UTC) - timedelta(minutes=5))
    saga.event("OrderPlaced", "orders", step="place-order", after_s=0)
    saga.command("ReserveStock", "orchestrator", step="reserve-stock", after_s=step_s)
    saga.event(
        "StockReserved", "inventory", step="reserve-stock", after_s=step_s, skew_s=inventory_skew_s
    )
    saga.command("RetrievePayment", "orchestrator", step="payment", after_s=step_s)
    if outcome in ("running", "stalled"):
        return saga
    if outcome == "failed":
        saga.event(
            "PaymentFailed", "payment", step="payment", after_s=step_s, status="failed",
            payload={"saga": saga_id, "error": "card declined"},
        )
        return saga
    if outcome in ("compensating", "compensated"):
        saga.event(
            "PaymentReceived", "payment", step="payment", after_s=step_s,
        )
        saga.command("ShipOrder", "orchestrator", step="shipping", after_s=step_s)
        saga.event(
            "ShippingFailed", "shipping", step="shipping", after_s=step_s, status="compensating",
            payload={"saga": saga_id, "error": "address unknown"},
        )
        saga.command(
            "RefundPayment", "orchestrator", step="refund-payment", compensates="payment",
            after_s=step_s,
        )
        if outcome == "compensated":
            saga.event(
                "PaymentRefunded", "payment", step="refund-payment", compensates="payment",
                after_s=step_s,
            )
            saga.command(
                "ReleaseStock", "orchestrator", step="release-stock",
                compensates="reserve-stock", after_s=step_s,
            )
            saga.event(
                "StockReleased", "inventory", step="release-stock", compensates="reserve-stock",
                after_s=step_s, skew_s=inventory_skew_s, status="compensated",
            )
        return saga
    if outcome != "completed":
        raise ValueError(f"unknown outcome {outcome!r}")
    saga.event("PaymentReceived", "payment", step="payment", after_s=step_s)
    saga.command("ShipOrder", "orchestrator", step="shipping", after_s=step_s)
    saga.event("OrderShipped", "shipping", step="shipping", after_s=step_s)
    saga.event("OrderCompleted", "orchestrator", step="complete", after_s=step_s, status="completed")
    return saga


#: The statuses :func:`seed_scenarios` creates one saga of (``stalled`` is ``running`` but old).
SCENARIO_STATUSES = ("completed", "failed", "compensating", "compensated", "running", "stalled")


def seed_scenarios(
    store: Any, now: datetime | None = None, *, prefix: str = "order-"
) -> dict[str, str]:
    """Insert one order saga per status; returns ``{status: saga_id}``.

    With the default 300 s stall threshold the ``stalled`` saga has been silent for an hour
    and the ``running`` and ``compensating`` ones for seconds (measured from ``now``, default
    the wall clock).
    """
    now = now or datetime.now(UTC)
    ids = {status: f"{prefix}{status}" for status in SCENARIO_STATUSES}
    sagas = []
    for status, saga_id in ids.items():
        if status == "stalled":
            start = now - timedelta(hours=1)
        elif status in ("running", "compensating"):
            start = now - timedelta(seconds=20)
        else:
            start = now - timedelta(minutes=30)
        sagas.append(order_saga(saga_id, status, start=start))
    seed(store, sagas)
    return ids
