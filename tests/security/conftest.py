"""Session fixtures of the security tests: a throwaway CA, and Tansu behind stunnel (mutual TLS)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sagascope.embedded import EmbeddedBroker, free_port
from tests.security.pki import CertificateAuthority
from tests.security.stunnel import Stunnel
from tests.security.tls_setup import Pki, TlsBroker


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


@pytest.fixture(scope="session")
def tls_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    tls_port = free_port()
    with EmbeddedBroker(advertised_port=tls_port) as broker, Stunnel(
        tmp_path_factory.mktemp("stunnel"), broker.port, pki.server.cert, pki.server.key,
        client_ca=pki.ca.cert_path, port=tls_port,
    ) as tls:
        yield TlsBroker(broker, tls)




@pytest.fixture(scope="session")
def sasl_broker() -> Iterator[EmbeddedBroker]:
    """Tansu with ``--authentication``: every client must complete SASL (SCRAM) first."""
    with EmbeddedBroker(authentication=True) as broker:
        yield broker
