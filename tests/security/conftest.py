"""Session fixtures of the security tests: a throwaway CA, and Tansu behind stunnel (mutual TLS)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sagascope.embedded import EmbeddedBroker, free_port
from sagascope.settings import BrokerSettings
from tests.security.pki import CertificateAuthority, Issued
from tests.security.stunnel import Stunnel


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    server: Issued
    client: Issued
    #: A CA that signed nothing the broker presents, and a client certificate of its own.
    other_ca: CertificateAuthority
    other_client: Issued


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(directory, "good")
    other = CertificateAuthority(directory, "other")
    return Pki(
        ca=ca,
        server=ca.issue("broker", server=True),
        client=ca.issue("sagascope", server=False),
        other_ca=other,
        other_client=other.issue("intruder", server=False),
    )


@dataclass(frozen=True)
class TlsBroker:
    """Tansu on a plaintext port, reachable for clients only through stunnel's mutual TLS."""

    broker: EmbeddedBroker
    tls: Stunnel

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.tls.port}"

    def settings(self, pki: Pki, **overrides: object) -> BrokerSettings:
        """``[broker]`` for a client with the right CA and client certificate, plus overrides."""
        values: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": "SSL",
            "ssl_cafile": str(pki.ca.cert_path),
            "ssl_certfile": str(pki.client.cert),
            "ssl_keyfile": str(pki.client.key),
            "connect_timeout_s": 10.0,
        }
        values.update(overrides)
        return BrokerSettings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tls_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    tls_port = free_port()
    with EmbeddedBroker(advertised_port=tls_port) as broker, Stunnel(
        tmp_path_factory.mktemp("stunnel"), broker.port, pki.server.cert, pki.server.key,
        client_ca=pki.ca.cert_path, port=tls_port,
    ) as tls:
        yield TlsBroker(broker, tls)


def toml_broker_section(settings: BrokerSettings) -> str:
    """The ``[broker]`` table of sagascope.toml for these settings (non-secret fields only)."""
    lines = ["[broker]"]
    for name in ("bootstrap_servers", "security_protocol", "ssl_cafile", "ssl_certfile",
                 "ssl_keyfile", "sasl_mechanism", "sasl_username", "sasl_password_file"):
        value = getattr(settings, name)
        if value:
            lines.append(f'{name} = "{value}"')
    lines.append(f"connect_timeout_s = {settings.connect_timeout_s}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def sasl_broker() -> Iterator[EmbeddedBroker]:
    """Tansu with ``--authentication``: every client must complete SASL (SCRAM) first."""
    with EmbeddedBroker(authentication=True) as broker:
        yield broker
