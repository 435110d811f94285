"""The instrumentation works with kafka-python 2.x too: a real send and handle on the broker.

kafka-python 2.2 is installed with ``pip --target`` next to the base venv and put first on
``PYTHONPATH`` for one script, so the same wheel install is exercised with both majors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging_venv import check, run

from sagascope.instrumentation import contract as c
from sagascope.testing import contract_violations

pytestmark = pytest.mark.slow

KAFKA2 = "kafka-python==2.2.15"

SCRIPT = r"""
import json, sys, time
import kafka
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sagascope.instrumentation import InstrumentedProducer, saga_handler, start_saga

bootstrap, first, second = sys.argv[1:4]
producer = InstrumentedProducer(KafkaProducer(bootstrap_servers=bootstrap), service="orders")

def read(topic):
    # Its own wait: this runs in the kafka-python 2.x venv, without pytest or tests/waiting.py.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            consumer.close()
            return records[0]
    raise SystemExit(f"nothing on {topic}")

@saga_handler("payment", consumer_group="payment")
def handle(record):
    producer.send(second, {"paid": True}, type="PaymentReceived")

with start_saga("order-fulfillment", "order-2x"):
    producer.send(first, {"amount": 3}, key="order-2x", type="RetrievePayment", kind="command")
producer.flush()
handle(read(first))
producer.flush()
out = [read(first), read(second)]
producer.close()
print(json.dumps({
    "kafka": kafka.__version__,
    "headers": [[[k, v.decode()] for k, v in r.headers] for r in out],
}))
"""


@pytest.fixture(scope="session")
def kafka2_dir(tmp_path_factory: pytest.TempPathFactory, base_venv: Path) -> Path:
    target = tmp_path_factory.mktemp("kafka2")
    check(run([str(base_venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
               "--target", str(target), KAFKA2], timeout_s=180))
    return target


def test_saga_over_kafka_python_2(base_venv: Path, kafka2_dir: Path, bootstrap_servers: str,
                                  make_topic) -> None:
    first, second = make_topic("k2-cmd"), make_topic("k2-evt")
    proc = check(run([str(base_venv / "bin" / "python"), "-c", SCRIPT, bootstrap_servers,
                      first, second], timeout_s=90, env={"PYTHONPATH": str(kafka2_dir)}))
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["kafka"].startswith("2.")
    command, event = ([(k, v.encode()) for k, v in hs] for hs in out["headers"])
    assert contract_violations(command) == []
    assert contract_violations(event) == []
    values = [dict((k, v.decode()) for k, v in hs) for hs in (command, event)]
    assert values[1][c.CE_CAUSATIONID] == values[0][c.CE_ID]
    assert values[1][c.CE_SAGAID] == values[0][c.CE_SAGAID] == "order-2x"
    assert (c.parse_traceparent(values[1][c.TRACEPARENT]).trace_id
            == c.parse_traceparent(values[0][c.TRACEPARENT]).trace_id)
