"""Kafka client configuration from ``[broker]``: one source for every client sagascope opens.

kafka-python (the collector, ``replay``, the alerter's Kafka sink, the admin client),
confluent-kafka and aiokafka (services that embed the instrumentation) each spell the same
security settings differently; these functions translate :class:`BrokerSettings` once::

    KafkaProducer(**kafka_python_config(settings.broker), acks="all")
    confluent_kafka.Producer(confluent_config(settings.broker))
    AIOKafkaProducer(**aiokafka_config(settings.broker))

Inconsistent settings fail here, naming the setting; whether the broker accepts them is
``sagascope.broker_check``'s question. Secrets (passwords, tokens) never appear in an error.

This module imports only ``sagascope.settings`` and ``sagascope.exceptions`` (and the Kafka
clients lazily), so every part may use it.
"""

from __future__ import annotations

import importlib
import os
import ssl
import time
from collections.abc import Callable
from typing import Any

from sagascope.exceptions import ConfigError
from sagascope.settings import BrokerSettings, secret

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")

#: What an OAUTHBEARER token provider returns: a token, or a token and its expiry (epoch s).
TokenResult = str | tuple[str, float]


def uses_tls(broker: BrokerSettings) -> bool:
    return broker.security_protocol.upper() in ("SSL", "SASL_SSL")


def uses_sasl(broker: BrokerSettings) -> bool:
    return broker.security_protocol.upper().startswith("SASL_")


def check_broker_settings(broker: BrokerSettings) -> None:
    """Refuse inconsistent ``[broker]`` security settings before any connection.

    Raises:
        ConfigError: naming the setting (unknown protocol or mechanism, unreadable file,
            a certificate without its key, SASL without credentials).
    """
    protocol = broker.security_protocol.upper()
    if protocol not in PROTOCOLS:
        raise ConfigError(
            f"setting broker.security_protocol must be one of {', '.join(PROTOCOLS)}, "
            f"got {broker.security_protocol!r}"
        )
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(broker, name)
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"setting broker.{name}: cannot read {path}")
    if bool(broker.ssl_certfile) != bool(broker.ssl_keyfile):
        raise ConfigError("settings broker.ssl_certfile and broker.ssl_keyfile go together (mutual TLS)")
    secret(broker, "ssl_key_password", "broker")
    if not uses_sasl(broker):
        return
    mechanism = broker.sasl_mechanism.upper()
    if mechanism not in MECHANISMS:
        raise ConfigError(
            f"setting broker.sasl_mechanism must be one of {', '.join(MECHANISMS)}, "
            f"got {broker.sasl_mechanism!r}"
        )
    if mechanism == "OAUTHBEARER":
        token_provider(broker)
    elif not broker.sasl_username or not secret(broker, "sasl_password", "broker"):
        raise ConfigError(
            f"SASL {mechanism} needs broker.sasl_username and a password "
            "(SAGASCOPE_BROKER_SASL_PASSWORD or broker.sasl_password_file)"
        )


def token_provider(broker: BrokerSettings) -> Callable[[], TokenResult]:
    """The OAUTHBEARER token callable ``broker.sasl_oauth_token_provider`` names (``module:name``).

    Raises:
        ConfigError: the setting is empty, malformed, or names nothing callable.
    """
    spec = broker.sasl_oauth_token_provider
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(
            "SASL OAUTHBEARER needs broker.sasl_oauth_token_provider = 'module:callable', "
            f"got {spec!r}"
        )
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"setting broker.sasl_oauth_token_provider: cannot load {spec!r}: {exc}") from None
    if not callable(target):
        raise ConfigError(f"setting broker.sasl_oauth_token_provider: {spec!r} is not callable")
    return target


def _token(provider: Callable[[], TokenResult]) -> tuple[str, float]:
    result = provider()
    if isinstance(result, tuple):
        return str(result[0]), float(result[1])
    # Without an expiry the clients ask again well before a typical token (1 h) runs out.
    return str(result), time.time() + 300.0


def ssl_context(broker: BrokerSettings) -> ssl.SSLContext:
    """An SSL context from ``[broker]``: CA file (else system CAs), client cert, hostname check."""
    context = ssl.create_default_context(cafile=broker.ssl_cafile or None)
    context.check_hostname = broker.ssl_check_hostname
    if not broker.ssl_check_hostname:
        # Hostname checks off still verifies the chain: a self-signed broker needs its CA file.
        context.verify_mode = ssl.CERT_REQUIRED
    if broker.ssl_certfile:
        try:
            context.load_cert_chain(
                broker.ssl_certfile, broker.ssl_keyfile or None,
                password=secret(broker, "ssl_key_password", "broker") or None,
            )
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                "settings broker.ssl_certfile / broker.ssl_keyfile: cannot load the client "
                f"certificate and key ({type(exc).__name__}: {getattr(exc, 'reason', None) or exc.strerror})"
            ) from None
    return context


def kafka_python_config(broker: BrokerSettings) -> dict[str, Any]:
    """kafka-python client arguments (``KafkaConsumer``/``KafkaProducer``/``KafkaAdminClient``)."""
    config = _checked_common(broker)
    if uses_tls(broker):
        config["ssl_check_hostname"] = broker.ssl_check_hostname
        config["ssl_cafile"] = broker.ssl_cafile or None
        if broker.ssl_certfile:
            config["ssl_certfile"] = broker.ssl_certfile
            config["ssl_keyfile"] = broker.ssl_keyfile
            config["ssl_password"] = secret(broker, "ssl_key_password", "broker") or None
    return _with_sasl(config, broker, _kafka_python_token_provider)


def _checked_common(broker: BrokerSettings) -> dict[str, Any]:
    """The settings checked, and the arguments kafka-python and aiokafka name alike."""
    check_broker_settings(broker)
    return {
        "bootstrap_servers": broker.bootstrap_servers,
        "security_protocol": broker.security_protocol.upper(),
    }


def _with_sasl(
    config: dict[str, Any], broker: BrokerSettings, wrap_provider: Callable[[Any], Any]
) -> dict[str, Any]:
    """SASL arguments in the names kafka-python and aiokafka share; the OAUTHBEARER token
    provider wrapped in the client's own provider class."""
    if uses_sasl(broker):
        mechanism = broker.sasl_mechanism.upper()
        config["sasl_mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            config["sasl_oauth_token_provider"] = wrap_provider(token_provider(broker))
        else:
            config["sasl_plain_username"] = broker.sasl_username
            config["sasl_plain_password"] = secret(broker, "sasl_password", "broker")
    return config


def _kafka_python_token_provider(provider: Callable[[], TokenResult]) -> Any:
    base: Any = None
    for module_name in ("kafka.net.sasl.oauth", "kafka.sasl.oauth", "kafka.oauth.abstract"):
        try:
            base = importlib.import_module(module_name).AbstractTokenProvider
            break
        except (ImportError, AttributeError):
            continue
    if base is None:  # pragma: no cover - every supported kafka-python has one of them
        raise ConfigError("this kafka-python has no OAUTHBEARER support")

    class _Provider(base):
        def token(self) -> str:
            return _token(provider)[0]

    return _Provider()


def confluent_config(broker: BrokerSettings) -> dict[str, Any]:
    """confluent-kafka (librdkafka) configuration: dotted keys, ``oauth_cb`` for OAUTHBEARER."""
    check_broker_settings(broker)
    config: dict[str, Any] = {
        "bootstrap.servers": broker.bootstrap_servers,
        "security.protocol": broker.security_protocol.upper(),
    }
    if uses_tls(broker):
        if broker.ssl_cafile:
            config["ssl.ca.location"] = broker.ssl_cafile
        config["ssl.endpoint.identification.algorithm"] = "https" if broker.ssl_check_hostname else "none"
        if broker.ssl_certfile:
            config["ssl.certificate.location"] = broker.ssl_certfile
            config["ssl.key.location"] = broker.ssl_keyfile
            key_password = secret(broker, "ssl_key_password", "broker")
            if key_password:
                config["ssl.key.password"] = key_password
    if uses_sasl(broker):
        mechanism = broker.sasl_mechanism.upper()
        config["sasl.mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            provider = token_provider(broker)
            config["oauth_cb"] = lambda _config_str: _token(provider)
        else:
            config["sasl.username"] = broker.sasl_username
            config["sasl.password"] = secret(broker, "sasl_password", "broker")
    return config


def aiokafka_config(broker: BrokerSettings) -> dict[str, Any]:
    """aiokafka client arguments: TLS as an ``ssl_context``, OAUTHBEARER as an async provider."""
    config = _checked_common(broker)
    if uses_tls(broker):
        config["ssl_context"] = ssl_context(broker)
    return _with_sasl(config, broker, _aiokafka_token_provider)


def _aiokafka_token_provider(provider: Callable[[], TokenResult]) -> Any:
    try:
        base: Any = importlib.import_module("aiokafka.abc").AbstractTokenProvider
    except (ImportError, AttributeError):
        base = object

    class _Provider(base):
        async def token(self) -> str:
            return _token(provider)[0]

    return _Provider()
