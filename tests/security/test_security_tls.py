"""Kafka over real TLS: Tansu behind Debian's stunnel4 with client-certificate verification."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sagascope.broker_check import BrokerConnectionError, check_broker
from sagascope.connections import kafka_python_config
from sagascope.embedded import create_topics, free_port
from sagascope.settings import BrokerSettings
from tests.security.clirun import sagascope, start_sagascope, wait_for_page
from tests.security.tls_setup import Pki, TlsBroker, toml_broker_section

pytestmark = pytest.mark.slow


def _values(topic: str, config: dict[str, Any]) -> list[bytes]:
    """Every record value on ``topic``, read over the broker ``config`` until 20 s bring none."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, **config, auto_offset_reset="earliest", consumer_timeout_ms=20000)
    try:
        return [record.value for record in consumer]
    finally:
        consumer.close()


def test_kafka_python_produces_and_consumes_through_mutual_tls(tls_broker: TlsBroker, pki: Pki) -> None:
    from kafka import KafkaProducer

    config = kafka_python_config(tls_broker.settings(pki))
    create_topics(tls_broker.bootstrap_servers, {"tls.roundtrip": 1}, client_config=config)
    producer = KafkaProducer(**config)
    producer.send("tls.roundtrip", b"over tls").get(timeout=30)
    producer.close()
    assert _values("tls.roundtrip", config) == [b"over tls"]


@pytest.mark.parametrize(
    ("case", "overrides", "named"),
    [
        ("wrong CA", {"ssl_cafile": "OTHER_CA"}, "broker.ssl_cafile"),
        ("no client certificate", {"ssl_certfile": "", "ssl_keyfile": ""}, "broker.ssl_certfile"),
        ("client certificate of another CA", {"ssl_certfile": "OTHER_CERT", "ssl_keyfile": "OTHER_KEY"},
         "broker.ssl_certfile"),
        ("plaintext client", {"security_protocol": "PLAINTEXT"}, "broker.security_protocol"),
    ],
)
def test_check_broker_names_the_setting_that_is_wrong(
    tls_broker: TlsBroker, pki: Pki, case: str, overrides: dict[str, str], named: str
) -> None:
    paths = {
        "OTHER_CA": str(pki.other_ca.cert_path),
        "OTHER_CERT": str(pki.other_client.cert),
        "OTHER_KEY": str(pki.other_client.key),
    }
    settings = tls_broker.settings(pki, **{k: paths.get(v, v) for k, v in overrides.items()})
    with pytest.raises(BrokerConnectionError) as raised:
        check_broker(settings)
    assert named in str(raised.value), case


def test_tls_client_against_a_plaintext_listener_fails_within_the_connect_timeout(
    tls_broker: TlsBroker, pki: Pki
) -> None:
    settings = tls_broker.settings(
        pki, bootstrap_servers=tls_broker.broker.bootstrap_servers, connect_timeout_s=2.0
    )
    with pytest.raises(BrokerConnectionError, match=r"broker\.connect_timeout_s"):
        check_broker(settings)


def _write_config(directory: Path, broker: BrokerSettings, extra: str = "") -> Path:
    path = directory / "sagascope.toml"
    path.write_text(
        toml_broker_section(broker)
        + f'\n[store]\npath = "{directory / "store"}"\ndatabase = "tls"\n'
        + extra
    )
    return path


#: tls-B is left compensating; replayed before tls-A, it falls silent while tls-A completes.
_STUCK_LOG = (
    "case,activity,timestamp,saga_status\n"
    "tls-B,Order,2024-01-01T11:00:00Z,\n"
    "tls-B,Pay,2024-01-01T11:01:00Z,compensating\n"
)
_LOG = (
    "case,activity,timestamp,saga_status\n"
    "tls-A,Order,2024-01-01T10:00:00Z,\n"
    "tls-A,Ship,2024-01-01T10:05:00Z,completed\n"
)


def _wait_stored(metrics_port: int, at_least: int, collector: subprocess.Popen[bytes], log: Path) -> None:
    def stored_enough(text: str) -> bool:
        stored = sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("sagascope_collector_stored_total{") and "tls.orders" in line
        )
        return stored >= at_least

    wait_for_page(
        f"http://127.0.0.1:{metrics_port}/metrics", collector, log, stored_enough, 120,
        f"{at_least} rows of tls.orders stored",
    )


def test_replay_collect_and_kafka_alert_sink_work_through_tls_configured_only_by_the_toml(
    tls_broker: TlsBroker, pki: Pki, tmp_path: Path
) -> None:

    settings = tls_broker.settings(pki)
    config = _write_config(
        tmp_path, settings,
        '\n[collector]\ngroup_id = "tls-collector"\ninclude = "tls\\\\.orders"\n'
        'decode_workers = 0\nmax_poll_interval_ms = 3000\n'
        '\n[alerts]\nsinks = "kafka"\nkafka_topic = "tls.alerts"\ndefault_threshold_s = 0.1\n',
    )
    (tmp_path / "stuck.csv").write_text(_STUCK_LOG)
    (tmp_path / "orders.csv").write_text(_LOG)
    for log_file in ("stuck.csv", "orders.csv"):
        replayed = sagascope(["replay", log_file, "--topic", "tls.orders", "--partitions", "1",
                              "--no-progress", "--config", str(config)], tmp_path)
        assert replayed.returncode == 0, replayed.stderr
        assert "2 events, 1 cases -> tls.orders" in replayed.stdout

    metrics_port = free_port()
    log = tmp_path / "collect.log"
    collector = start_sagascope(
        ["collect", "--config", str(config), "--metrics-port", str(metrics_port)], tmp_path, log=log
    )
    try:
        _wait_stored(metrics_port, 4, collector, log)
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=60)

    flow = sagascope(["flow", "tls-A", "--json", "--config", str(config)], tmp_path)
    assert flow.returncode == 0, flow.stderr
    assert [m["type"] for m in json.loads(flow.stdout)["messages"]] == ["Order", "Ship"]

    alerted = sagascope(["alert", "--once", "--config", str(config)], tmp_path)
    assert alerted.returncode == 0, alerted.stdout + alerted.stderr
    assert "tls-B" in alerted.stdout

    alerts = [json.loads(value) for value in _values("tls.alerts", kafka_python_config(settings))]
    assert [a["saga_id"] for a in alerts] == ["tls-B"]


@pytest.mark.parametrize(
    ("case", "edit", "named"),
    [
        ("wrong CA", {"ssl_cafile": "OTHER_CA"}, "broker.ssl_cafile"),
        ("no client certificate", {"ssl_certfile": "", "ssl_keyfile": ""}, "broker.ssl_certfile"),
        ("plaintext client", {"security_protocol": "PLAINTEXT"}, "broker.security_protocol"),
    ],
)
@pytest.mark.parametrize("command", ["collect", "replay"])
def test_commands_fail_once_naming_the_setting_instead_of_retrying(
    tls_broker: TlsBroker, pki: Pki, tmp_path: Path, command: str, case: str,
    edit: dict[str, str], named: str,
) -> None:
    paths = {"OTHER_CA": str(pki.other_ca.cert_path)}
    settings = tls_broker.settings(pki, **{k: paths.get(v, v) for k, v in edit.items()})
    config = _write_config(tmp_path, settings)
    (tmp_path / "orders.csv").write_text(_LOG)
    args = ["collect"] if command == "collect" else ["replay", "orders.csv", "--no-progress"]
    # Bounded: a client retrying forever would hit this timeout and fail the test.
    result = sagascope([*args, "--config", str(config)], tmp_path, timeout_s=60)
    assert result.returncode == 1, case
    errors = [line for line in result.stderr.splitlines() if line.startswith("sagascope:")]
    assert len(errors) == 1, result.stderr
    assert named in errors[0]
    assert "Traceback" not in result.stderr


def test_span_exporter_sends_through_mutual_tls_with_the_broker_settings(
    tls_broker: TlsBroker, pki: Pki
) -> None:
    from sagascope.instrumentation import configure_tracing

    config = kafka_python_config(tls_broker.settings(pki))
    create_topics(tls_broker.bootstrap_servers, {"tls.spans": 1}, client_config=config)
    producer_config = {k: v for k, v in config.items() if k != "bootstrap_servers"}
    provider = configure_tracing(
        "tls-service", tls_broker.bootstrap_servers, "tls.spans", set_global=False,
        producer_config=producer_config,
    )
    with provider.get_tracer("tls-test").start_as_current_span("handled-over-tls"):
        pass
    provider.shutdown()
    assert any(b"handled-over-tls" in value for value in _values("tls.spans", config))


def test_demo_against_an_external_mutual_tls_broker_runs_all_three_clients_through_it(
    tls_broker: TlsBroker, pki: Pki, tmp_path: Path
) -> None:
    config = _write_config(
        tmp_path, tls_broker.settings(pki),
        '\n[collector]\ngroup_id = "tls-demo"\ndecode_workers = 0\n'
        '\n[demo]\ntopic_prefix = "tlsdemo."\nrate = 3.0\nmax_sagas = 12\nfailure_rate = 0.0\n'
        'drop_rate = 0.0\nduplicate_rate = 0.0\nerror_rate = 0.0\n',
    )
    demo = sagascope(["demo", "--no-dashboard", "--duration", "45", "--config", str(config)],
                     tmp_path, timeout_s=240)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]

    # The store is the demo's own chDB directory: read it in a process of its own.
    probe = subprocess.run(
        [sys.executable, "-c",
         "import json, sys\n"
         "from sagascope.store import ChdbStore\n"
         "store = ChdbStore(sys.argv[1], 'tls', read_only=True)\n"
         "rows = store.query('SELECT source, count() FROM messages GROUP BY source').rows\n"
         "print(json.dumps(dict(rows)))\n",
         str(tmp_path / "store")],
        capture_output=True, text=True, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    by_source = json.loads(probe.stdout)
    # payment runs on confluent-kafka, inventory on aiokafka, the rest on kafka-python.
    assert by_source.get("payment", 0) > 0, by_source
    assert by_source.get("inventory", 0) > 0, by_source
    assert set(by_source) - {"payment", "inventory"}, by_source  # and kafka-python services
