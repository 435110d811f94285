"""``sagascope discover`` on a saga system of its own (tests/discover/saga_system.py), sent
un-instrumented to the real broker: the rules it writes let the real collector rebuild every
flow with the system's own statuses and compensation pairs."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from discover_helpers import collect
from kafka.admin import KafkaAdminClient
from saga_system import NOISE_TOPICS, SagaSystem, build_system, produce

from sagascope.cli import main
from sagascope.queries import SagaQueries
from sagascope.settings import CorrelationRule, load_settings

_runs = itertools.count()
#: What the config file held before discovery wrote to it.
EXISTING = """# the team's own settings
[alerts]
interval_s = 3.0
"""


@dataclass
class Discovered:
    system: SagaSystem
    config: Path
    output: str
    groups_before: set[str]
    groups_after: set[str]
    rules: tuple[CorrelationRule, ...]
    queries: SagaQueries
    bootstrap_servers: str
    pattern: str


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _groups(bootstrap_servers: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        return {g["group_id"] for g in admin.list_groups()}
    finally:
        admin.close()


@pytest.fixture(scope="module")
def discovered(bootstrap_servers: str, module_store, tmp_path_factory) -> Iterator[Discovered]:
    system = build_system(f"d{os.getpid()}r{next(_runs)}.")
    produce(system, bootstrap_servers)
    config = tmp_path_factory.mktemp("discover") / "sagascope.toml"
    config.write_text(EXISTING)
    pattern = re.escape(system.prefix) + ".*"
    before = _groups(bootstrap_servers)
    code, output, err = run_cli("discover", "--bootstrap-servers", bootstrap_servers,
                                "--topic", pattern, "--config", str(config), "--write")
    assert code == 0, err
    after = _groups(bootstrap_servers)
    rules = load_settings(config, environ={}).collector.correlation
    store = module_store()
    collect(store, bootstrap_servers, system.topics, len(system.messages), rules)
    yield Discovered(system, config, output, before, after, rules, SagaQueries(store),
                     bootstrap_servers, pattern)


def test_discover_joins_no_consumer_group(discovered: Discovered):
    assert discovered.groups_after == discovered.groups_before


def test_every_saga_is_one_flow_with_its_messages_in_order(discovered: Discovered):
    for saga_id, truth in discovered.system.sagas.items():
        flow = discovered.queries.flow(saga_id)
        assert [m.type for m in flow.messages] == truth.types, saga_id


def test_every_saga_ends_with_its_true_status(discovered: Discovered):
    ours = {s.saga_id: s.status for s in discovered.queries.sagas(limit=10_000)}
    assert ours == {saga_id: t.status for saga_id, t in discovered.system.sagas.items()}


def test_compensations_pair_each_undone_step_with_its_undo(discovered: Discovered):
    pairs = discovered.queries.compensations()
    assert {(p.saga_id, p.step) for p in pairs} == {
        (saga_id, step) for saga_id, t in discovered.system.sagas.items() for step in t.undone
    }
    assert {p.state for p in pairs} == {"completed"}


def test_noise_topics_stay_unattached(discovered: Discovered):
    noise = [discovered.system.topic(t) for t in NOISE_TOPICS]
    assert not [r for r in discovered.rules if any(re.fullmatch(r.topic, t) for t in noise)]
    stored = discovered.queries.store.query(
        "SELECT count() FROM messages WHERE topic IN {t:Array(String)} AND saga_id != ''",
        {"t": noise}).scalar()
    assert stored == 0


def test_request_ids_and_customer_ids_are_set_aside_and_said_so(discovered: Discovered):
    set_aside = discovered.output.split("set aside:")[1].split("\n\n")[0]
    assert "header:x-request-id" in set_aside and "(a request id)" in set_aside
    assert "/customerId" in set_aside and "(a customer or tenant id)" in set_aside
    assert not {r.saga_id for r in discovered.rules} & {"header:x-request-id", "/customerId"}


def test_write_keeps_the_rest_of_the_config_file(discovered: Discovered):
    text = discovered.config.read_text()
    assert text.startswith(EXISTING)
    assert tomllib.loads(text)["alerts"] == {"interval_s": 3.0}


def test_write_refuses_to_replace_rules_for_the_same_topics_without_force(
    discovered: Discovered, tmp_path: Path
):
    config = tmp_path / "sagascope.toml"
    config.write_text(discovered.config.read_text())
    argv = ("discover", "--bootstrap-servers", discovered.bootstrap_servers,
            "--topic", discovered.pattern, "--config", str(config), "--write")
    code, _, err = run_cli(*argv)
    assert code == 1 and "already has rules for" in err and "--force" in err
    assert config.read_text() == discovered.config.read_text()
    code, _, err = run_cli(*argv, "--force")
    assert code == 0, err
    assert load_settings(config, environ={}).collector.correlation == discovered.rules


def test_records_stored_without_a_saga_give_the_same_rules(
    discovered: Discovered, module_store, tmp_path: Path
):
    store = module_store()
    system = discovered.system
    collect(store, discovered.bootstrap_servers, system.topics, len(system.messages))
    config = tmp_path / "sagascope.toml"
    config.write_text("")
    code, _, err = run_cli("discover", "--from-store", "--store-path", store.path,
                           "--database", store.database, "--topic", discovered.pattern,
                           "--config", str(config), "--write")
    assert code == 0, err
    assert load_settings(config, environ={}).collector.correlation == discovered.rules
