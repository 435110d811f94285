"""The spans services would have reported for seeded sagas: a PRODUCER span per message and
a CONSUMER span where the next message's service handled it (as bench_dashboard generates)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from seeding import SagaScript

#: Time a message waits in Kafka, and a handler's run time, in the seeded spans.
WAIT = timedelta(milliseconds=20)
HANDLE = timedelta(milliseconds=5)


def _span_id(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:16]


def span_rows(saga: SagaScript) -> list[dict[str, Any]]:
    """Spans of every message of ``saga``; a handler that answered with a message whose type
    says it failed ends with an error."""
    rows: list[dict[str, Any]] = []
    messages = saga.rows
    for i, m in enumerate(messages):
        common = {"trace_id": m["trace_id"], "saga_id": m["saga_id"],
                  "saga_type": m["saga_type"], "message_id": m["message_id"],
                  "ingest_time": m["ingest_time"], "topic": "sagascope.spans", "partition": 0,
                  "offset": 0, "attributes": {}, "links": [], "events": "[]",
                  "parse_error": "", "payload": ""}
        cause = m["causation_id"]
        rows.append({**common, "span_id": m["span_id"],
                     "parent_span_id": _span_id("consumer", cause) if cause else "",
                     "name": f"{m['type']} send", "kind": "PRODUCER", "service": m["source"],
                     "start_time": m["kafka_time"] - timedelta(milliseconds=1),
                     "end_time": m["kafka_time"], "status_code": "UNSET",
                     "status_message": ""})
        if i + 1 < len(messages):
            start = m["kafka_time"] + WAIT
            # The handler failed when what it sent says so (the payment handler of
            # RetrievePayment that answered PaymentFailed).
            failed = "Failed" in messages[i + 1]["type"]
            rows.append({**common, "span_id": _span_id("consumer", m["message_id"]),
                         "parent_span_id": m["span_id"], "name": f"{m['type']} process",
                         "kind": "CONSUMER", "service": messages[i + 1]["source"],
                         "start_time": start, "end_time": start + HANDLE,
                         "status_code": "ERROR" if failed else "UNSET",
                         "status_message": "handler raised" if failed else ""})
    for offset, row in enumerate(rows):
        row["offset"] = offset
    return rows
