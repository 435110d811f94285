"""SASL: the settings that reach each Kafka client, and what a real Tansu broker says to them.

Tansu 0.6 with ``--authentication`` accepts the SCRAM-SHA-256/512 handshake and runs the real
SCRAM exchange, but a user cannot be created on it: ``tansu user create`` must itself
authenticate first, and the memory storage (the only one this build has besides S3) starts
empty. So the successful login is not exercised against a broker; the refused one is.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from sagascope.broker_check import BrokerConnectionError, check_broker
from sagascope.connections import (
    aiokafka_config,
    confluent_config,
    kafka_python_config,
)
from sagascope.embedded import EmbeddedBroker
from sagascope.exceptions import ConfigError
from sagascope.settings import BrokerSettings, load_settings
from tests.security import token_provider

SCRAM = BrokerSettings(
    bootstrap_servers="127.0.0.1:9",
    security_protocol="SASL_SSL",
    sasl_mechanism="SCRAM-SHA-512",
    sasl_username="sagascope",
    sasl_password="scram-pw",
)
OAUTH = dataclasses.replace(
    SCRAM, sasl_mechanism="OAUTHBEARER", sasl_username="", sasl_password="",
    sasl_oauth_token_provider="tests.security.token_provider:fetch_token",
)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_against_tansu_runs_the_exchange_and_names_the_user_it_refused(
    sasl_broker: EmbeddedBroker, mechanism: str
) -> None:
    settings = BrokerSettings(
        bootstrap_servers=sasl_broker.bootstrap_servers, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism, sasl_username="nobody", sasl_password="pw-of-nobody",
        connect_timeout_s=10,
    )
    with pytest.raises(BrokerConnectionError) as raised:
        check_broker(settings)
    message = str(raised.value)
    assert f"SASL {mechanism} authentication as broker.sasl_username 'nobody' failed" in message
    assert "unknown-user" in message
    assert "pw-of-nobody" not in message


def test_a_mechanism_the_broker_refuses_names_broker_sasl_mechanism(broker: EmbeddedBroker) -> None:
    settings = BrokerSettings(
        bootstrap_servers=broker.bootstrap_servers, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256", sasl_username="u", sasl_password="p", connect_timeout_s=10,
    )
    with pytest.raises(
        BrokerConnectionError, match=r"does not accept SASL mechanism .*broker\.sasl_mechanism"
    ):
        check_broker(settings)


def test_kafka_python_gets_scram_settings_and_accepts_them() -> None:
    from kafka import KafkaProducer

    config = kafka_python_config(dataclasses.replace(SCRAM, security_protocol="SASL_PLAINTEXT"))
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("sagascope", "scram-pw")
    # kafka-python refuses unknown arguments and inconsistent SASL settings at construction.
    producer = KafkaProducer(**config, max_block_ms=100, api_version=(3, 0))
    producer.close(timeout=1)


def test_confluent_kafka_gets_its_own_names_and_librdkafka_accepts_them(tmp_path: Path) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    from tests.security.pki import CertificateAuthority

    authority = CertificateAuthority(tmp_path, "rd")
    ca = authority.cert_path
    client = authority.issue("client", server=False)
    config = confluent_config(dataclasses.replace(
        SCRAM, ssl_cafile=str(ca), ssl_certfile=str(client.cert), ssl_keyfile=str(client.key),
        ssl_check_hostname=False,
    ))
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("sagascope", "scram-pw")
    assert config["ssl.ca.location"] == str(ca)
    assert config["ssl.endpoint.identification.algorithm"] == "none"
    # librdkafka validates every property name and value, and loads the files, here.
    confluent_kafka.Producer(config).flush(0)


def test_confluent_oauthbearer_calls_the_token_provider() -> None:
    config = confluent_config(dataclasses.replace(
        OAUTH, sasl_oauth_token_provider="tests.security.token_provider:fetch_token_with_expiry"
    ))
    assert config["sasl.mechanism"] == "OAUTHBEARER"
    assert config["oauth_cb"]("") == ("expiring-token", 4102444800.0)


def test_kafka_python_oauthbearer_uses_the_token_provider() -> None:
    from kafka.net.sasl.oauth import AbstractTokenProvider

    provider = kafka_python_config(OAUTH)["sasl_oauth_token_provider"]
    assert isinstance(provider, AbstractTokenProvider)
    token_provider.calls.clear()
    assert provider.token() == "token-from-the-identity-provider"
    assert token_provider.calls == ["fetch_token"]


def test_aiokafka_gets_an_ssl_context_and_an_async_token_provider(tmp_path: Path) -> None:
    aiokafka = pytest.importorskip("aiokafka")
    from aiokafka.abc import AbstractTokenProvider

    from tests.security.pki import CertificateAuthority

    ca = CertificateAuthority(tmp_path, "aio")
    config = aiokafka_config(dataclasses.replace(OAUTH, ssl_cafile=str(ca.cert_path)))
    assert config["ssl_context"].check_hostname
    provider = config["sasl_oauth_token_provider"]
    assert isinstance(provider, AbstractTokenProvider)
    assert asyncio.run(provider.token()) == "token-from-the-identity-provider"

    async def construct() -> None:
        # aiokafka checks protocol, mechanism and credentials together when built.
        producer = aiokafka.AIOKafkaProducer(**aiokafka_config(SCRAM))
        del producer

    asyncio.run(construct())


def test_sasl_password_comes_from_env_or_file_never_both(tmp_path: Path) -> None:
    secret_file = tmp_path / "sasl"
    secret_file.write_text("from-file\n")
    env = {"SAGASCOPE_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
           "SAGASCOPE_BROKER_SASL_USERNAME": "u", "SAGASCOPE_BROKER_SASL_PASSWORD": "from-env"}
    empty = tmp_path / "sagascope.toml"
    empty.write_text("")
    settings = load_settings(empty, environ=env)
    assert kafka_python_config(settings.broker)["sasl_plain_password"] == "from-env"
    assert "from-env" not in repr(settings)
    from_file = load_settings(empty, environ={**env, "SAGASCOPE_BROKER_SASL_PASSWORD": "",
                                             "SAGASCOPE_BROKER_SASL_PASSWORD_FILE": str(secret_file)})
    assert kafka_python_config(from_file.broker)["sasl_plain_password"] == "from-file"
    both = load_settings(empty, environ={**env, "SAGASCOPE_BROKER_SASL_PASSWORD_FILE": str(secret_file)})
    with pytest.raises(ConfigError, match=r"broker\.sasl_password or broker\.sasl_password_file"):
        kafka_python_config(both.broker)


def test_unreadable_secret_file_names_the_setting(tmp_path: Path) -> None:
    settings = dataclasses.replace(SCRAM, sasl_password="", sasl_password_file=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"broker\.sasl_password_file"):
        kafka_python_config(settings)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"security_protocol": "TLS"}, "broker.security_protocol"),
        ({"sasl_mechanism": "GSSAPI"}, "broker.sasl_mechanism"),
        ({"sasl_password": ""}, "SAGASCOPE_BROKER_SASL_PASSWORD"),
        ({"ssl_keyfile": "/nonexistent/key.pem"}, "broker.ssl_keyfile"),
        ({"sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": "no_such_module:x"},
         "broker.sasl_oauth_token_provider"),
    ],
)
def test_inconsistent_settings_are_refused_before_connecting(change: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        kafka_python_config(dataclasses.replace(SCRAM, **change))
