"""The query API against the oracle, number by number, on every seeded saga system."""

from __future__ import annotations

from collections import Counter

import pytest
from truth_oracle import FINISHED
from truth_store import Seeded

from sagascope.queries import SagaFilter

MS = 0.0015  # event times are stored to the millisecond


def _types(truth: Seeded, seed: int) -> list[str]:
    return [t.name for t in truth.systems[seed].saga_types
            if truth.expected[seed].of_type(t.name)]


def test_status_counts_per_type(truth: Seeded, seed: int) -> None:
    for saga_type in _types(truth, seed):
        got = truth.queries.status_counts(SagaFilter(saga_type=saga_type))
        assert got == truth.expected[seed].status_counts(saga_type), saga_type


def test_every_saga_status_and_cycle_time(truth: Seeded, seed: int) -> None:
    expected = truth.expected[seed]
    for saga_type in _types(truth, seed):
        got = {s.saga_id: s for s in truth.queries.sagas(SagaFilter(saga_type=saga_type),
                                                         limit=10_000)}
        want = {s.saga_id: s for s in expected.of_type(saga_type)}
        assert set(got) == set(want)
        for saga_id, facts in want.items():
            s = got[saga_id]
            assert (s.status, s.last_step) == (facts.status, facts.last_step), saga_id
            assert s.duration_s == pytest.approx(facts.duration_s, abs=MS), saga_id
            assert s.duration_s >= 0, saga_id


def test_cycle_time_percentiles_per_type(truth: Seeded, seed: int) -> None:
    for saga_type in _types(truth, seed):
        n, p50, p95 = truth.expected[seed].cycle_percentiles(saga_type)
        stats = [c for c in truth.queries.cycle_times(SagaFilter(saga_type=saga_type))
                 if c.saga_type == saga_type]
        if not n:
            assert not stats
            continue
        assert (stats[0].count, stats[0].p50_s, stats[0].p95_s) == (
            n, pytest.approx(p50, abs=MS), pytest.approx(p95, abs=MS))


def test_stalled_list(truth: Seeded, seed: int) -> None:
    for saga_type in _types(truth, seed):
        got = {s.saga_id for s in truth.queries.stalled(SagaFilter(saga_type=saga_type))}
        want = {s.saga_id for s in truth.expected[seed].of_type(saga_type)
                if s.status == "stalled"}
        assert got == want


def test_failure_causes(truth: Seeded, seed: int) -> None:
    for saga_type in _types(truth, seed):
        got = Counter()
        for f in truth.queries.failures(SagaFilter(saga_type=saga_type)):
            got[(f.step, f.service, f.error, f.reason, f.status)] += f.sagas
        assert got == truth.expected[seed].failure_counts(saga_type)


def test_compensation_pairing(truth: Seeded, seed: int) -> None:
    for saga_type in _types(truth, seed):
        got = {(p.saga_id, p.step): p.state
               for p in truth.queries.compensations(SagaFilter(saga_type=saga_type))}
        want = {k: v for k, v in truth.expected[seed].pairs.items()
                if truth.expected[seed].sagas[k[0]].saga_type == saga_type}
        assert got == want


def test_process_map_edges(truth: Seeded, seed: int) -> None:
    for saga_type in _types(truth, seed):
        graph = truth.queries.process_map(SagaFilter(saga_type=saga_type))
        got = Counter({(e.source, e.target): e.count for e in graph.edges})
        assert got == truth.expected[seed].edges.get(saga_type, Counter())
        assert graph.sagas == len(truth.expected[seed].of_type(saga_type))


def test_waiting_now_per_step(truth: Seeded, seed: int) -> None:
    for saga_type in _types(truth, seed):
        got = truth.queries.waiting_by_step(SagaFilter(saga_type=saga_type))
        assert got == truth.expected[seed].waiting.get(saga_type, {})


def test_started_and_finished_per_minute(truth: Seeded, seed: int) -> None:
    for saga_type in _types(truth, seed):
        got = [(int(p.bucket.timestamp() * 1000), p.messages, p.sagas_started,
                p.sagas_finished, p.partial)
               for p in truth.queries.throughput(SagaFilter(saga_type=saga_type), 60)]
        want = truth.expected[seed].per_minute(truth.systems[seed], saga_type,
                                               truth.watermark_ms)
        assert got == want


def test_step_times_with_a_type_filter(truth: Seeded, seed: int) -> None:
    for saga_type in _types(truth, seed):
        # No handler spans here: an empty answer, never ILLEGAL_AGGREGATION.
        assert truth.queries.step_times(SagaFilter(saga_type=saga_type)) == []


def test_finished_statuses_are_the_oracles(truth: Seeded, seed: int) -> None:
    # The generator's own account of how each saga ended agrees with the oracle's reading.
    for saga in truth.systems[seed].sagas:
        status = truth.expected[seed].sagas[saga.saga_id].status
        if saga.outcome in FINISHED:
            assert status == saga.outcome, saga.saga_id


def test_a_failure_cause_lists_exactly_the_sagas_it_counts(truth: Seeded, seed: int) -> None:
    causes = truth.expected[seed].causes
    counted: Counter[tuple[str, ...]] = Counter()
    for saga_type in _types(truth, seed):
        for f in truth.queries.failures(SagaFilter(saga_type=saga_type)):
            counted[(f.saga_type, f.step, f.service, f.error, f.reason)] += f.sagas
    for key, n in counted.items():
        page = truth.queries.saga_page(SagaFilter(cause=key), limit=1000)
        want = {sid for sid, c in causes.items()
                if (c.saga_type, c.step, c.service, c.error, c.reason) == key}
        assert {s.saga_id for s in page.sagas} == want
        assert page.total == n


def test_a_map_step_or_arrow_lists_as_many_sagas_as_it_says(truth: Seeded, seed: int) -> None:
    for saga_type in _types(truth, seed):
        graph = truth.queries.process_map(SagaFilter(saga_type=saga_type), by="step")
        assert {n.activity: n.sagas for n in graph.nodes} == dict(
            truth.expected[seed].step_sagas[saga_type])
        for node in graph.nodes:
            page = truth.queries.saga_page(SagaFilter(saga_type=saga_type, step=node.activity))
            assert page.total == node.sagas, node.activity
        for edge in graph.edges:
            page = truth.queries.saga_page(
                SagaFilter(saga_type=saga_type, transition=(edge.source, edge.target)))
            assert page.total == edge.sagas == truth.expected[seed].arrow_sagas[saga_type][
                (edge.source, edge.target)], (edge.source, edge.target)
