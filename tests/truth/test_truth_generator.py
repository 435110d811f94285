"""The generator and the oracle over any seed (hypothesis): the systems are what they claim."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from truth_generator import THRESHOLD_S, generate_system
from truth_oracle import FINISHED, expect

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10**7))
def test_each_system_is_well_formed(seed: int) -> None:
    system = generate_system(seed, NOW)
    ids = {m.message_id for m in system.messages}
    # Every cause named is in the system; nothing is sent after "now".
    assert all(m.causation_id in ids for m in system.messages if m.causation_id)
    assert max(m.kafka_ms for m in system.messages) <= NOW_MS
    expected = expect(system, NOW_MS + 60_000)
    for truth in system.sagas:
        facts = expected.sagas[truth.saga_id]
        assert facts.duration_s >= 0
        if truth.outcome in FINISHED:
            assert facts.status == truth.outcome
        else:  # unfinished: clear of the threshold either way
            assert abs(facts.silent_s - THRESHOLD_S) > THRESHOLD_S / 4
        if truth.cause is not None:
            assert truth.cause.message_id in ids
            # The failed step is never among the steps to undo.
            assert truth.cause.step not in truth.undos or not truth.cause.step


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10**7))
def test_undos_only_for_steps_the_saga_did(seed: int) -> None:
    system = generate_system(seed, NOW)
    for m in system.messages:
        if not m.compensates:
            continue
        truth = next(t for t in system.sagas if t.saga_id == m.saga_id)
        assert m.compensates in truth.undos
        assert truth.undos[m.compensates] != "missing"
