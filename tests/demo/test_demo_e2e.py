"""End to end: every flow with faults on, through the real collector, store and alerter.

The store is then checked against the demo's own ground truth: every saga present, each with
its final status and step sequence, the stalled ones alerted, the legacy service's messages
tied to their sagas by the correlation rule of the shipped ``sagascope.toml``.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from pathlib import Path

import pytest
from demo_expect import expected_signatures, in_truth_order, make_faulty_demo_settings
from waiting import poll_until

from sagascope.alerter import Alerter
from sagascope.collector import Collector
from sagascope.demo_services import DemoRunner
from sagascope.queries import SagaFilter, SagaQueries
from sagascope.settings import AlertSettings, load_settings

pytestmark = pytest.mark.slow

REPO_CONFIG = Path(__file__).resolve().parents[2] / "sagascope.toml"
STALL_TIMEOUT_S = 6.0


@pytest.fixture(scope="module")
def demo_in_store(bootstrap_servers, chdb_path):
    from sagascope.store import ChdbStore, ensure_schema

    shipped = load_settings(REPO_CONFIG)
    demo = make_faulty_demo_settings()
    prefix = demo.topic_prefix
    collector_settings = dataclasses.replace(
        shipped.collector, group_id=f"{prefix}collector", include=f"{re.escape(prefix)}.*",
        telemetry_topic=f"{prefix}spans", flush_interval_s=0.3, max_poll_interval_ms=3000,
    )
    alert_settings = AlertSettings(interval_s=0.5, default_threshold_s=STALL_TIMEOUT_S,
                                   sinks="log")
    # Not the shared ``store`` fixture (one per test): this module's tests share one demo run.
    store = ChdbStore(chdb_path, f"demo_e2e_{prefix.strip('.').replace('.', '_')}")
    ensure_schema(store)
    runner = DemoRunner(demo, bootstrap_servers, telemetry_topic=collector_settings.telemetry_topic)
    runner.start(traffic=False)
    collector = Collector(store, bootstrap_servers, collector_settings, collector_id="e2e")
    queries = SagaQueries.from_settings(store, alert_settings)
    alerter = Alerter(store, queries, alert_settings, [], "http://dashboard.test")
    stop_alerter = threading.Event()
    try:
        collector.start()
        assert collector.ready.wait(60), "collector got no partitions"
        alerter.start(stop_alerter)
        runner.wait_ready(30)
        assert runner.traffic is not None
        runner.traffic.start()
        assert runner.traffic.wait_finished(60)
        truths = {t.saga_id: t for t in runner.ground_truth.sagas()}

        def settled():
            summaries = {s.saga_id: s for s in queries.sagas(SagaFilter(), limit=10_000)}
            alerted = set(store.query("SELECT DISTINCT saga_id FROM alerts").column("saga_id"))
            done = all(
                sid in summaries and summaries[sid].status == t.status
                and (t.status != "stalled" or sid in alerted)
                for sid, t in truths.items()
            )
            return (summaries, alerted) if done else None

        outcome = poll_until(settled, 90.0, 0.5)
        summaries = {s.saga_id: s for s in queries.sagas(SagaFilter(), limit=10_000)}
        alerted = set(store.query("SELECT DISTINCT saga_id FROM alerts").column("saga_id"))
        yield runner, truths, queries, summaries, alerted, outcome is not None, store
    finally:
        stop_alerter.set()
        runner.stop()
        collector.stop()
        alerter.close()
        store.command(f"DROP DATABASE IF EXISTS {store.database}")


def test_every_saga_started_is_in_the_store(demo_in_store):
    _runner, truths, _q, summaries, _alerted, _settled, _store = demo_in_store
    missing = sorted(set(truths) - set(summaries))
    assert not missing, f"{len(missing)} sagas missing, e.g. {missing[:5]}"


def test_each_saga_ends_in_the_status_its_ground_truth_says(demo_in_store):
    _runner, truths, _q, summaries, _alerted, settled, _store = demo_in_store
    wrong = [
        f"{sid} ({t.plan.saga_type}/{t.plan.scenario}): expected {t.status}, "
        f"store says {summaries[sid].status if sid in summaries else 'nothing'}"
        for sid, t in truths.items()
        if sid not in summaries or summaries[sid].status != t.status
    ]
    assert settled and not wrong, "\n".join(wrong[:10])


def test_each_flow_has_the_expected_step_sequence(demo_in_store):
    _runner, truths, queries, _s, _alerted, _settled, _store = demo_in_store
    wrong = []
    for sid, truth in truths.items():
        flow = queries.flow(sid)
        got = in_truth_order(truth, [
            (m.type, m.source, m.kind, m.step, m.saga_status, m.compensates)
            for m in flow.messages
        ])
        if got != expected_signatures(truth):
            wrong.append(f"{sid} ({truth.plan.scenario}, {truth.status}):\n"
                         f"  expected {expected_signatures(truth)}\n  got      {got}")
    assert not wrong, f"{len(wrong)} flows differ:\n" + "\n".join(wrong[:5])


def test_duplicates_are_stored_but_shown_once(demo_in_store):
    _runner, truths, queries, _s, _alerted, _settled, store = demo_in_store
    repeated = store.query(
        "SELECT message_id FROM messages WHERE message_id != '' "
        "GROUP BY message_id HAVING count() > 1"
    ).column("message_id")
    assert repeated, "the run injected duplicate sends; the store must hold both copies"
    flagged = [m for sid in truths for m in queries.flow(sid).messages if m.duplicates]
    assert flagged


def test_stalled_sagas_are_alerted_and_only_they(demo_in_store):
    _runner, truths, _q, _s, alerted, _settled, _store = demo_in_store
    stalled = {sid for sid, t in truths.items() if t.status == "stalled"}
    assert stalled, "the run dropped messages; some sagas must stall"
    assert stalled <= alerted
    # A saga that finished may only have been alerted if it was silent past the threshold
    # on the way (the card-update wait is shorter than it): none here.
    assert not (alerted - stalled)


def test_legacy_messages_are_tied_to_their_sagas_by_the_correlation_rule(demo_in_store):
    _runner, truths, queries, _s, _alerted, _settled, _store = demo_in_store
    legacy = [
        m for sid, t in truths.items() if t.plan.saga_type == "order-fulfillment"
        for m in queries.flow(sid).messages if m.source == "legacy-wms"
    ]
    assert legacy
    assert all(m.correlation.startswith("rule") for m in legacy)
    assert all(m.headers == {} for m in legacy)
    assert all(m.saga_type == "order-fulfillment" for m in legacy)


def test_card_numbers_are_redacted_by_the_shipped_config(demo_in_store):
    _runner, _truths, _q, _s, _alerted, _settled, store = demo_in_store
    leaked = store.query(
        "SELECT count() FROM messages WHERE position(payload, '4111-1111-1111-1111') > 0 "
        "OR position(payload, '4000-0000-0000-0002') > 0"
    ).scalar()
    assert leaked == 0
    cvv = store.query("SELECT count() FROM messages WHERE position(payload, 'cvv') > 0 "
                      "AND position(payload, '\"123\"') > 0").scalar()
    assert cvv == 0
    masked = store.query("SELECT count() FROM messages WHERE position(payload, '[CARD]') > 0"
                         ).scalar()
    assert masked > 0


def test_services_export_handler_spans_and_injected_failures_show_as_errors(demo_in_store):
    runner, _truths, _q, _s, _alerted, _settled, store = demo_in_store
    instrumented = {s.name for s in runner.services if s.instrumented}

    def spans():
        services = set(store.query(
            "SELECT DISTINCT service FROM spans WHERE kind = 'CONSUMER'").column("service"))
        errors = store.query(
            "SELECT count() FROM spans WHERE kind = 'CONSUMER' AND status_code = 'ERROR'"
        ).scalar()
        return (services, errors) if services >= instrumented and errors else None

    found = poll_until(spans, 30.0, 0.5)
    assert found, "handler spans of every instrumented service, some failed, were expected"
    services, _errors = found
    assert "legacy-wms" not in services


def test_a_card_update_or_a_legacy_record_continues_the_saga_in_a_new_trace(demo_in_store):
    _runner, truths, queries, _s, _alerted, _settled, _store = demo_in_store
    fulfillment = {sid: t for sid, t in truths.items() if t.plan.saga_type == "order-fulfillment"}
    assert any("CardUpdated" in t.types for t in fulfillment.values())
    for sid, truth in fulfillment.items():
        # The customer's update is a new request; the order service picks the saga up again
        # from the legacy warehouse's header-less record under a new trace too.
        restarted_by_legacy = "ShipGoods" in truth.types or "RefundPayment" in truth.types
        expected = 1 + ("CardUpdated" in truth.types) + restarted_by_legacy
        assert len(queries.flow(sid).trace_ids) == expected, (sid, truth.types)
