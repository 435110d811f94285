"""Is the broker reachable as ``[broker]`` says? One connection, made by hand, to find out.

:func:`check_broker` opens one connection the way the clients will and turns what goes wrong
(wrong CA, missing client certificate, plaintext against TLS, refused SASL mechanism) into one
:class:`BrokerConnectionError` naming the setting, in bounded time: Kafka clients themselves
retry such failures forever. It speaks the Kafka protocol itself (:func:`kafka_request`), as
no client reports these failures as such. Secrets never appear in an error or a log.

Imports only the base modules (and kafka-python's SASL mechanisms lazily).
"""

from __future__ import annotations

import contextlib
import importlib
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from typing import Any

from sagascope.connections import (
    check_broker_settings,
    kafka_python_config,
    ssl_context,
    uses_sasl,
    uses_tls,
)
from sagascope.exceptions import ConfigError, SagascopeError
from sagascope.settings import BrokerSettings

__all__ = ["BrokerConnectionError", "check_broker", "kafka_request"]


class BrokerConnectionError(SagascopeError):
    """The broker cannot be reached as configured; the message names the setting to check."""


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
    # TLS 1.3 servers check the client certificate after the handshake: the refusal arrives
    # with the first read, as a TLS error of this step.
    with _failures_named(
        broker, server, during="on a Kafka request",
        silent=(
            f"broker {server} did not answer a Kafka request within broker.connect_timeout_s "
            f"({broker.connect_timeout_s:g} s) with broker.security_protocol="
            f"{broker.security_protocol.upper()}: "
            + ("does the listener expect TLS (SSL or SASL_SSL)?" if not uses_tls(broker) else
               "is it a Kafka listener?")
        ),
        advice="; " + (
            "the listener probably expects TLS: set broker.security_protocol to SSL or SASL_SSL"
            if not uses_tls(broker) else "check broker.ssl_certfile (mutual TLS) and the listener"
        ),
    ):
        _api_versions(stream)
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
    with _failures_named(
        broker, server, during="during the TLS handshake",
        silent=(
            f"broker {server}: no TLS handshake within broker.connect_timeout_s "
            f"({broker.connect_timeout_s:g} s); is broker.security_protocol right?"
        ),
        advice=": does the listener speak TLS? check broker.security_protocol",
    ):
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


@contextlib.contextmanager
def _failures_named(
    broker: BrokerSettings, server: str, *, during: str, silent: str, advice: str
) -> Iterator[None]:
    """Turn a step of the conversation with ``server`` failing into the error naming what to
    check: the broker refused our TLS, said nothing in time (``silent``), or closed the
    connection ``during`` the step (then ``advice``)."""
    try:
        yield
    except ssl.SSLError as exc:
        raise BrokerConnectionError(_tls_refusal(broker, server, exc)) from None
    except TimeoutError:
        raise BrokerConnectionError(silent) from None
    except (ConnectionError, EOFError, OSError) as exc:
        raise BrokerConnectionError(
            f"broker {server} closed the connection {during} ({type(exc).__name__}){advice}"
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


def kafka_request(stream: socket.socket, api_key: int, api_version: int, body: bytes) -> bytes:
    """Send one Kafka request (header v1: correlation id 1, client id ``sagascope-check``)
    and return its response body, after the correlation id.

    Raises:
        ConnectionError: the answer is not a Kafka response.
        EOFError: the connection closed before the whole answer came.
    """
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
    kafka_request(stream, 18, 0, b"")


def _sasl_handshake(stream: socket.socket, mechanism: str, server: str) -> None:
    name = mechanism.encode()
    response = kafka_request(stream, 17, 1, struct.pack(">h", len(name)) + name)
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
        response = kafka_request(stream, 36, 0, struct.pack(">i", len(token)) + token)
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
