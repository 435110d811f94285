"""Kafka client configuration from ``[broker]``: one source for every client sagascope opens.

kafka-python (the collector, ``replay``, the alerter's Kafka sink, the admin client),
confluent-kafka and aiokafka (services that embed the instrumentation) each spell the same
security settings differently; these functions translate :class:`BrokerSettings` once::

    KafkaProducer(**kafka_python_config(settings.broker), acks="all")
    confluent_kafka.Producer(confluent_config(settings.broker))
    AIOKafkaProducer(**aiokafka_config(settings.broker))

:func:`check_broker` opens one connection the way the clients will and turns what goes wrong
(wrong CA, missing client certificate, plaintext against TLS, refused SASL mechanism) into one
:class:`BrokerConnectionError` naming the setting, in bounded time: Kafka clients themselves
retry such failures forever. Secrets (passwords, tokens) never appear in an error or a log.

This module imports only ``sagascope.settings`` and ``sagascope.exceptions`` (and the Kafka
clients lazily), so every part may use it.
"""

from __future__ import annotations

import importlib
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any

from sagascope.exceptions import ConfigError, SagascopeError
from sagascope.settings import BrokerSettings, secret

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")

#: What an OAUTHBEARER token provider returns: a token, or a token and its expiry (epoch s).
TokenResult = str | tuple[str, float]


class BrokerConnectionError(SagascopeError):
    """The broker cannot be reached as configured; the message names the setting to check."""


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
    check_broker_settings(broker)
    config: dict[str, Any] = {
        "bootstrap_servers": broker.bootstrap_servers,
        "security_protocol": broker.security_protocol.upper(),
    }
    if uses_tls(broker):
        config["ssl_check_hostname"] = broker.ssl_check_hostname
        config["ssl_cafile"] = broker.ssl_cafile or None
        if broker.ssl_certfile:
            config["ssl_certfile"] = broker.ssl_certfile
            config["ssl_keyfile"] = broker.ssl_keyfile
            config["ssl_password"] = secret(broker, "ssl_key_password", "broker") or None
    return _with_sasl(config, broker, _kafka_python_token_provider)


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
    check_broker_settings(broker)
    config: dict[str, Any] = {
        "bootstrap_servers": broker.bootstrap_servers,
        "security_protocol": broker.security_protocol.upper(),
    }
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


# -- start-up check ---------------------------------------------------------------------


def check_broker(broker: BrokerSettings, *, timeout_s: float | None = None) -> None:
    """Connect once as the clients will, and fail with one clear error naming the setting.

    Checks TCP, then TLS (the CA, the client certificate), then that a Kafka request is
    answered (a plaintext client against a TLS listener gets no answer), then that the broker
    accepts the SASL mechanism. Takes at most about ``timeout_s`` (``broker.connect_timeout_s``).

    Raises:
        ConfigError: the settings are inconsistent.
        BrokerConnectionError: the broker cannot be reached as configured.
    """
    check_broker_settings(broker)
    timeout = broker.connect_timeout_s if timeout_s is None else timeout_s
    servers = [s.strip() for s in broker.bootstrap_servers.split(",") if s.strip()]
    if not servers:
        raise ConfigError("setting broker.bootstrap_servers is empty")
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    for server in servers:
        host, _, port_text = server.rpartition(":")
        if not host or not port_text.isdigit():
            raise ConfigError(f"setting broker.bootstrap_servers: {server!r} is not host:port")
        remaining = max(deadline - time.monotonic(), 0.5)
        try:
            sock = socket.create_connection((host.strip("[]"), int(port_text)), timeout=remaining)
        except OSError as exc:
            problems.append(f"{server}: {exc.strerror or type(exc).__name__}")
            continue
        with sock:
            sock.settimeout(max(deadline - time.monotonic(), 0.5))
            _check_connection(broker, sock, host.strip("[]"), server)
        return
    raise BrokerConnectionError(
        "cannot reach any of broker.bootstrap_servers (" + "; ".join(problems) + ")"
    )


def _check_connection(broker: BrokerSettings, sock: socket.socket, host: str, server: str) -> None:
    stream: socket.socket = sock
    if uses_tls(broker):
        stream = _tls_handshake(broker, sock, host, server)
    try:
        _api_versions(stream)
    except ssl.SSLError as exc:
        # TLS 1.3 servers check the client certificate after the handshake: the refusal
        # arrives with the first read.
        raise BrokerConnectionError(_tls_refusal(broker, server, exc)) from None
    except TimeoutError:
        raise BrokerConnectionError(
            f"broker {server} did not answer a Kafka request within broker.connect_timeout_s "
            f"({broker.connect_timeout_s:g} s) with broker.security_protocol="
            f"{broker.security_protocol.upper()}: "
            + ("does the listener expect TLS (SSL or SASL_SSL)?" if not uses_tls(broker) else
               "is it a Kafka listener?")
        ) from None
    except (ConnectionError, EOFError, OSError) as exc:
        hint = (
            "the listener probably expects TLS: set broker.security_protocol to SSL or SASL_SSL"
            if not uses_tls(broker) else "check broker.ssl_certfile (mutual TLS) and the listener"
        )
        raise BrokerConnectionError(
            f"broker {server} closed the connection on a Kafka request "
            f"({type(exc).__name__}); {hint}"
        ) from None
    if uses_sasl(broker):
        mechanism = broker.sasl_mechanism.upper()
        try:
            _sasl_handshake(stream, mechanism, server)
            _sasl_authenticate(stream, broker, server)
        except (OSError, EOFError, TimeoutError) as exc:
            raise BrokerConnectionError(
                f"broker {server} dropped the connection during SASL {mechanism} "
                f"({type(exc).__name__}): check broker.sasl_mechanism and broker.security_protocol"
            ) from None


def _tls_handshake(broker: BrokerSettings, sock: socket.socket, host: str, server: str) -> ssl.SSLSocket:
    context = ssl_context(broker)
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        if "match" in str(exc.verify_message) or "Hostname" in str(exc):
            raise BrokerConnectionError(
                f"broker {server}: its certificate does not name {host!r} "
                f"({exc.verify_message}); fix broker.bootstrap_servers or set "
                "broker.ssl_check_hostname = false"
            ) from None
        raise BrokerConnectionError(
            f"broker {server}: TLS certificate verification failed ({exc.verify_message}); "
            + (f"broker.ssl_cafile ({broker.ssl_cafile}) did not sign the broker's certificate"
               if broker.ssl_cafile else
               "set broker.ssl_cafile to the CA that signed the broker's certificate")
        ) from None
    except ssl.SSLError as exc:
        raise BrokerConnectionError(_tls_refusal(broker, server, exc)) from None
    except TimeoutError:
        raise BrokerConnectionError(
            f"broker {server}: no TLS handshake within broker.connect_timeout_s "
            f"({broker.connect_timeout_s:g} s); is broker.security_protocol right?"
        ) from None
    except (ConnectionError, OSError) as exc:
        raise BrokerConnectionError(
            f"broker {server} closed the connection during the TLS handshake "
            f"({type(exc).__name__}): does the listener speak TLS? check broker.security_protocol"
        ) from None


def _tls_refusal(broker: BrokerSettings, server: str, exc: ssl.SSLError) -> str:
    reason = (exc.reason or str(exc)).upper()
    if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason or "PACKET_LENGTH" in reason:
        return (
            f"broker {server} does not speak TLS ({exc.reason}); set broker.security_protocol "
            "to PLAINTEXT or SASL_PLAINTEXT, or use the broker's TLS port"
        )
    if not broker.ssl_certfile:
        return (
            f"broker {server} refused the TLS connection ({exc.reason}): it requires a client "
            "certificate; set broker.ssl_certfile and broker.ssl_keyfile (mutual TLS)"
        )
    return (
        f"broker {server} refused the TLS connection ({exc.reason}): the client certificate "
        f"broker.ssl_certfile ({broker.ssl_certfile}) was not accepted"
    )


def _request(stream: socket.socket, api_key: int, api_version: int, body: bytes) -> bytes:
    client_id = b"sagascope-check"
    header = struct.pack(">hhih", api_key, api_version, 1, len(client_id)) + client_id
    message = header + body
    stream.sendall(struct.pack(">i", len(message)) + message)
    size = struct.unpack(">i", _read_exactly(stream, 4))[0]
    if not 4 <= size <= 1 << 20:
        raise ConnectionError("not a Kafka response")
    return _read_exactly(stream, size)[4:]  # drop the correlation id


def _read_exactly(stream: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.recv(size - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def _api_versions(stream: socket.socket) -> None:
    _request(stream, 18, 0, b"")


def _sasl_handshake(stream: socket.socket, mechanism: str, server: str) -> None:
    name = mechanism.encode()
    response = _request(stream, 17, 1, struct.pack(">h", len(name)) + name)
    error_code = struct.unpack(">h", response[:2])[0]
    if error_code == 0:
        return
    offered: list[str] = []
    count = struct.unpack(">i", response[2:6])[0] if len(response) >= 6 else 0
    pos = 6
    for _ in range(max(count, 0)):
        length = struct.unpack(">h", response[pos:pos + 2])[0]
        offered.append(response[pos + 2:pos + 2 + length].decode("utf-8", "replace"))
        pos += 2 + length
    listed = ", ".join(m for m in offered if m != mechanism)
    raise BrokerConnectionError(
        f"broker {server} does not accept SASL mechanism {mechanism} (Kafka error {error_code})"
        + (f"; it offers {listed}" if listed else "")
        + ": check broker.sasl_mechanism and broker.security_protocol"
    )


def _sasl_authenticate(stream: socket.socket, broker: BrokerSettings, server: str) -> None:
    """Authenticate with kafka-python's own SASL mechanism, so a bad password fails here, once."""
    mechanisms: Any = None
    for module_name in ("kafka.net.sasl", "kafka.sasl"):
        try:
            mechanisms = importlib.import_module(module_name)
            break
        except ImportError:
            continue
    mechanism = broker.sasl_mechanism.upper()
    if mechanisms is None or not hasattr(mechanisms, "get_sasl_mechanism"):
        return  # an old kafka-python: its own connection reports the failure
    client = mechanisms.get_sasl_mechanism(mechanism)(**kafka_python_config(broker))
    who = f"broker.sasl_username {broker.sasl_username!r}" if mechanism != "OAUTHBEARER" else (
        "the token of broker.sasl_oauth_token_provider"
    )
    while not client.is_done():
        token = client.auth_bytes()
        response = _request(stream, 36, 0, struct.pack(">i", len(token)) + token)
        error_code, message_length = struct.unpack(">hh", response[:4])
        pos = 4 + max(message_length, 0)
        message = response[4:pos].decode("utf-8", "replace") if message_length > 0 else ""
        length = struct.unpack(">i", response[pos:pos + 4])[0]
        answer = response[pos + 4:pos + 4 + max(length, 0)]
        if answer.startswith(b"e="):
            # SCRAM's server-final "e=<reason>": a refusal the broker sends with no error code.
            error_code, message = 58, answer[2:].decode("utf-8", "replace")  # SASL_AUTHENTICATION_FAILED
        try:
            if error_code == 0:
                client.receive(answer)
        except (ValueError, KeyError) as exc:
            error_code, message = 58, f"unexpected server answer: {type(exc).__name__}"
        if error_code != 0:
            raise BrokerConnectionError(
                f"broker {server}: SASL {mechanism} authentication as {who} failed "
                f"(Kafka error {error_code}{': ' + message if message else ''}); check "
                + ("broker.sasl_username and the password (SAGASCOPE_BROKER_SASL_PASSWORD "
                   "or broker.sasl_password_file)" if mechanism != "OAUTHBEARER" else
                   "broker.sasl_oauth_token_provider")
            )
