"""Fault injection: per-service settings, deterministic decisions, a producer that loses and repeats."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, KafkaProducer

from sagascope.demo_services import FaultyProducer, resolve_faults
from sagascope.demo_services._faults import roll
from sagascope.settings import DemoSettings, ServiceFaults, load_settings


def test_roll_depends_on_seed_and_parts_only():
    assert roll(7, "drop", "payment", "s-1") == roll(7, "drop", "payment", "s-1")
    assert roll(7, "drop", "payment", "s-1") != roll(8, "drop", "payment", "s-1")
    values = [roll(1, n) for n in range(5000)]
    assert 0.45 < sum(values) / len(values) < 0.55


def test_service_overrides_win_over_the_demo_defaults():
    settings = DemoSettings(drop_rate=0.01, latency_ms=10, skewed_service="inventory",
                            clock_skew_s=-30, service_faults=(
                                ServiceFaults(service="hotel", error_rate=0.9, latency_ms=200),))
    hotel = resolve_faults(settings, "hotel")
    assert (hotel.error_rate, hotel.latency_ms, hotel.drop_rate) == (0.9, 200, 0.01)
    assert resolve_faults(settings, "inventory").clock_skew_s == -30
    assert resolve_faults(settings, "payment").clock_skew_s == 0


def test_service_faults_load_from_the_toml_file(tmp_path):
    path = tmp_path / "sagascope.toml"
    path.write_text('[demo]\nseed = 5\n[[demo.service_faults]]\nservice = "airline"\n'
                    "duplicate_rate = 0.5\n")
    settings = load_settings(path)
    assert resolve_faults(settings.demo, "airline").duplicate_rate == 0.5


def test_skewed_clock_runs_behind():
    faults = resolve_faults(DemoSettings(skewed_service="inventory", clock_skew_s=-30),
                            "inventory")
    assert -30.5 < faults.now() - time.time() < -29.5


def test_faulty_producer_drops_and_repeats_exactly_what_its_decisions_say(
        bootstrap_servers, make_topic):
    topic = make_topic("faults")
    faults = resolve_faults(DemoSettings(seed=3, drop_rate=0.3, duplicate_rate=0.3), "payment")
    producer = FaultyProducer(KafkaProducer(bootstrap_servers=bootstrap_servers), faults)
    expected: list[str] = []
    for n in range(60):
        saga = f"s-{n}"
        headers = [("ce_sagaid", saga.encode()), ("ce_type", b"PaymentRetrieved"),
                   ("ce_id", f"id-{n}".encode())]
        producer.send(topic, value=b"{}", key=saga.encode(), headers=headers)
        if not faults.drops(saga, "PaymentRetrieved", 1):
            expected += [f"id-{n}"] * (2 if faults.duplicates(saga, "PaymentRetrieved", 1) else 1)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    got = [dict(r.headers)["ce_id"].decode() for r in consumer]
    consumer.close()
    assert sorted(got) == sorted(expected)
    assert producer.dropped > 0 and producer.duplicated > 0
    assert len(set(got)) == 60 - producer.dropped


def test_what_services_remember_per_saga_is_bounded():
    from sagascope.demo_services._faults import BoundedCounter

    counter = BoundedCounter(capacity=3)
    for key in ("a", "b", "a", "c", "d"):
        counter.add(key)
    assert len(counter) == 3
    assert (counter.get("a"), counter.get("b"), counter.get("d")) == (2, 0, 1)
