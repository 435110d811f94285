"""Outcome markers: how a saga's end is told when no business message carries it.

A marker is an ordinary contract message (``ce_kind=event``, ``ce_type`` from
``contract.OUTCOME_TYPES``, ``ce_sagastatus`` set), so a collector of any version stores it
and reads the saga's status from it, as from any other message.
"""

from __future__ import annotations

from typing import Any

from sagascope.instrumentation import contract as c

#: Where ``InstrumentedProducer.mark_outcome`` sends markers unless told otherwise. Not an
#: underscore topic: collectors configured to skip internal topics still take it.
DEFAULT_OUTCOME_TOPIC = "sagascope.outcomes"


def outcome_message(status: str, saga_id: str, saga_type: str) -> tuple[str, dict[str, Any]]:
    """(``ce_type``, JSON value) of the marker of ``status`` for a saga."""
    value: dict[str, Any] = {"saga_id": saga_id, "status": status}
    if saga_type:
        value["saga_type"] = saga_type
    return c.OUTCOME_TYPES[status], value
