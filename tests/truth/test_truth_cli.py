"""``sagascope flow --json`` and ``sagascope stalled --json`` against the oracle."""

from __future__ import annotations

import json

import pytest
from truth_generator import THRESHOLD_S, utc
from truth_store import Seeded

from sagascope.cli import main

#: Sagas per system whose flow is asked through the CLI (each run opens the store).
FLOWS_PER_SYSTEM = 5


@pytest.fixture(autouse=True)
def _threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGASCOPE_ALERTS_DEFAULT_THRESHOLD_S", str(THRESHOLD_S))


def _cli(truth: Seeded, chdb_path: str, *args: str) -> list[str]:
    return [*args, "--store-path", chdb_path, "--database", truth.store.database]


def _sample(truth: Seeded, seed: int) -> list[str]:
    """Unfinished sagas and sagas touched by a skewed clock first, then any."""
    system = truth.systems[seed]
    skewed = {m.saga_id for m in system.messages if m.skew_ms}
    facts = truth.expected[seed].sagas
    ranked = sorted(facts, key=lambda s: (facts[s].status in ("completed", "failed",
                                                                "compensated"),
                                          s not in skewed, s))
    return ranked[:FLOWS_PER_SYSTEM]


def test_flow_json_agrees_with_the_oracle(truth: Seeded, seed: int, chdb_path: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    for saga_id in _sample(truth, seed):
        facts = truth.expected[seed].sagas[saga_id]
        assert main(_cli(truth, chdb_path, "flow", saga_id, "--json")) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["status"] == facts.status, saga_id
        assert data["duration_s"] == pytest.approx(facts.duration_s, abs=0.0015), saga_id
        assert data["started"] == str(utc(facts.started_ms)), saga_id
        ids = {m.message_id for m in truth.systems[seed].messages if m.saga_id == saga_id}
        assert len(data["messages"]) == len(ids)


def test_flow_timeline_starts_at_the_causal_start(truth: Seeded, seed: int, chdb_path: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for saga_id in _sample(truth, seed):
        assert main(_cli(truth, chdb_path, "flow", saga_id)) == 0
        lines = capsys.readouterr().out.splitlines()
        offsets = [float(cell[1:-1]) for line in lines[3:]
                   for cell in line.split() if cell.startswith("+") and cell.endswith("s")]
        assert offsets and offsets[0] == 0.0, saga_id
        assert min(offsets) >= 0.0 and offsets == sorted(offsets), saga_id


def test_stalled_json_lists_the_oracles_stalled_sagas(truth: Seeded, seed: int, chdb_path: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    for saga_type in {t.name for t in truth.systems[seed].saga_types}:
        assert main(_cli(truth, chdb_path, "stalled", "--json", "--saga-type", saga_type)) == 0
        got = {json.loads(line)["saga_id"] for line in capsys.readouterr().out.splitlines()
               if line.startswith("{")}
        want = {s.saga_id for s in truth.expected[seed].of_type(saga_type)
                if s.status == "stalled"}
        assert got == want
