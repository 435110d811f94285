"""A lost card update: the payment service times out, and the ground truth says so too.

The customer service drops every ``CardUpdated`` it sends. The payment service, which waits
``demo.card_update_wait_s`` for the new card, then fails the payment ("card not updated in
time"). The demo's ground truth must predict exactly that (a failed saga ending in
``PaymentFailed``, not a stalled one), and the store, fed by the real broker and collector,
must agree with it saga by saga.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from truth_runs import settled_demo_run

from sagascope.demo_services import SagaTruth
from sagascope.queries import SagaFilter, SagaQueries
from sagascope.settings import DemoSettings, ServiceFaults

pytestmark = pytest.mark.slow



def _card_loss_settings() -> DemoSettings:
    """24 sagas, every one a failure scenario; no fault but the customer losing its answers.

    Seed 7 plans two ``card_updated`` sagas (the customer answers, the answer is lost) and
    three ``card_expired`` ones among the six order-fulfillment sagas; the test asserts it.
    """
    return DemoSettings(
        rate=40.0, max_sagas=24, seed=7, failure_rate=0.7, drop_rate=0.0, duplicate_rate=0.0,
        error_rate=0.0, latency_ms=2.0, clock_skew_s=0.0, card_update_wait_s=1.0,
        service_faults=(ServiceFaults(service="customer", drop_rate=1.0),),
        topic_prefix=f"card{os.getpid()}.", run_id="ct", partitions=2,
        max_poll_interval_ms=3000,
    )


@pytest.fixture(scope="module")
def card_loss_run(bootstrap_servers: str, chdb_path: str,
                  ) -> Iterator[tuple[list[SagaTruth], SagaQueries]]:
    demo = _card_loss_settings()
    with settled_demo_run(
        bootstrap_servers, chdb_path, demo, database=f"card_truth_{demo.topic_prefix.strip('.')}",
        collector_id="card", threshold_s=30.0,
    ) as (_store, truths, queries):
        yield truths, queries


def test_a_lost_card_update_fails_the_payment_in_truth_and_in_store(card_loss_run: Any) -> None:
    truths, queries = card_loss_run
    timed_out = [t for t in truths if t.plan.scenario == "card_updated"]
    assert len(timed_out) == 2, "seed 7 must plan two card_updated sagas"
    for truth in timed_out:
        assert (truth.status, truth.lost) == ("failed", None), truth.saga_id
        assert truth.types == ["OrderPlaced", "RetrievePayment", "CardUpdateRequested",
                               "PaymentFailed"]

    stored = {s.saga_id: s.status for s in queries.sagas(SagaFilter(), limit=1000)}
    wrong = [f"{t.saga_id} ({t.plan.scenario}): truth {t.status}, store {stored.get(t.saga_id)}"
             for t in truths if stored.get(t.saga_id) != t.status]
    assert not wrong, "\n".join(wrong)
    for truth in timed_out:
        flow = queries.flow(truth.saga_id)
        assert Counter(m.type for m in flow.messages) == Counter(truth.types), truth.saga_id
    reasons = {f.reason for f in queries.failures(SagaFilter(saga_type="order-fulfillment"))
               if f.error == "PaymentFailed"}
    assert reasons == {"card not updated in time"}
