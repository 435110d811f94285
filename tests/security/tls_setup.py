"""What the TLS tests share: the throwaway PKI, the broker behind stunnel, sagascope.toml text."""

from __future__ import annotations

from dataclasses import dataclass

from sagascope.embedded import EmbeddedBroker
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
