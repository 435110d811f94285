"""Discovery on shapes the broker-backed system does not have, from records built in memory:
a framework that says everything in headers (as Eventuate Tram does)."""

from __future__ import annotations

import itertools

from sagascope.collector.discover import SampledRecord, discover

START_MS = 1_796_600_000_000


def header_only_system() -> list[SampledRecord]:
    """Commands and replies with empty payloads: saga id, saga type, command and reply types
    and the reply's outcome all in headers; every third credit check fails."""
    offsets = itertools.count()
    records = []
    for n in range(30):
        saga_id = f"0000017{n:04d}-saga"
        at = START_MS + n * 10_000
        outcome = "FAILURE" if n % 3 == 0 else "SUCCESS"
        for topic, headers in (
            ("customerService", {"command_type": "ReserveCredit"}),
            ("createOrderSaga-reply", {"reply_type": "CreditReply", "reply_outcome-type": outcome}),
            ("orderService", {"command_type": "RejectOrder" if outcome == "FAILURE"
                              else "ApproveOrder"}),
        ):
            at += 1000
            records.append(SampledRecord(
                topic, 0, next(offsets), at, None, b"{}",
                {"command_saga_id": saga_id, "command_saga_type": "CreateOrderSaga", **headers},
            ))
    return records


def test_a_header_only_framework_gets_saga_id_type_and_outcome_from_headers():
    proposal = discover(header_only_system())
    rules = {r.topic: r for r in proposal.rules}
    assert {r.saga_id for r in rules.values()} == {"header:command_saga_id"}
    assert {r.saga_type for r in rules.values()} == {"header:command_saga_type"}
    reply = rules["createOrderSaga\\-reply"]
    assert (reply.type, reply.outcome) == ("header:reply_type", "header:reply_outcome-type")
    assert [(o.value, o.status) for o in reply.outcomes] == [("FAILURE", "failed")]
    assert proposal.correlated == proposal.records
    assert proposal.statuses() == {"failed": 10, "completed": 20}


def test_a_boolean_flag_is_not_taken_for_an_outcome():
    records = []
    for n in range(20):
        for i, topic in enumerate(("orders", "parcels")):
            value = f'{{"orderId": "o-{n}", "express": {"false" if n % 2 else "true"}}}'
            records.append(SampledRecord(topic, 0, n, START_MS + n * 10_000 + i, None,
                                         value.encode()))
    proposal = discover(records)
    assert {r.saga_id for r in proposal.rules} == {"/orderId"}
    assert not [r for r in proposal.rules if r.outcome]
