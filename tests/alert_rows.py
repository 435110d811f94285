"""Rows of the store's ``alerts`` table as the alerter writes them, for tests that seed alerts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

PAYMENT = "PaymentReceived (reply to RetrievePayment)"
STOCK = "StockReserved (reply to ReserveStock)"


def alert_row(alert_id: str, *, now: datetime, saga_type: str = "orders", step: str = "payment",
              state: str = "open", waiting_for: str = PAYMENT, opened_ago_s: float = 600,
              resolved_ago_s: float | None = None, saga_prefix: str = "saga-") -> dict[str, Any]:
    """One alert on saga ``{saga_prefix}{alert_id}``: opened ``opened_ago_s`` before ``now``
    after 300 s of silence (its threshold); resolved ``resolved_ago_s`` before ``now`` if given."""
    saga_id = f"{saga_prefix}{alert_id}"
    opened = now - timedelta(seconds=opened_ago_s)
    resolved = now - timedelta(seconds=resolved_ago_s) if resolved_ago_s is not None else None
    return {
        "alert_id": alert_id, "state": state, "saga_id": saga_id,
        "saga_type": saga_type, "step": step, "waiting_for": waiting_for,
        "since": opened - timedelta(seconds=300), "threshold_s": 300.0, "opened_at": opened,
        "resolved_at": resolved, "resolution": "moved on" if resolved else "",
        "link": f"http://127.0.0.1:8501/flow_explorer?saga={saga_id}",
        "updated_at": resolved or opened,
    }


def order_alert(alert_id: str, *, now: datetime, **row: Any) -> dict[str, Any]:
    """An alert of the demo's kind: order-fulfillment saga ``order-{alert_id}``, opened half an
    hour before ``now``."""
    row = {"saga_type": "order-fulfillment", "saga_prefix": "order-", "opened_ago_s": 1800, **row}
    return alert_row(alert_id, now=now, **row)
