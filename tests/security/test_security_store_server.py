"""The ClickHouse server backend over HTTPS (stunnel in front of the loopback server), with its
user and password from settings or a secret file instead of the URL."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagascope.settings import StoreSettings
from sagascope.store import StoreUnavailable, open_store_from_settings
from tests.collector.chdb_http import ChdbHttpServer
from tests.security.stunnel import Stunnel
from tests.security.tls_setup import Pki

USER, PASSWORD = "sagascope_reader", "h77p-s3cret-pw"
_db_counter = itertools.count()


@pytest.fixture(scope="module")
def https_clickhouse(
    chdb_path: str, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``https://127.0.0.1:<port>``: stunnel's TLS before a password-protected loopback server."""
    with ChdbHttpServer(chdb_path, credentials=(USER, PASSWORD)) as server, Stunnel(
        tmp_path_factory.mktemp("https"), server.port, pki.server.cert, pki.server.key
    ) as tls:
        yield f"https://127.0.0.1:{tls.port}"


def _settings(url: str, pki: Pki, **overrides: str) -> StoreSettings:
    values = {"url": url, "database": f"https_{os.getpid()}_{next(_db_counter)}",
              "username": USER, "ca_file": str(pki.ca.cert_path), **overrides}
    return StoreSettings(**values)  # type: ignore[arg-type]


def test_store_over_https_with_the_password_from_a_secret_file(
    https_clickhouse: str, pki: Pki, tmp_path: Path
) -> None:
    (tmp_path / "clickhouse-password").write_text(PASSWORD + "\n")
    store = open_store_from_settings(
        _settings(https_clickhouse, pki, password_file=str(tmp_path / "clickhouse-password"))
    )
    try:
        assert store.query("SELECT {text:String}", {"text": "over tls"}).scalar() == "over tls"
    finally:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


def test_wrong_password_is_an_error_naming_the_settings_without_the_password(
    https_clickhouse: str, pki: Pki
) -> None:
    with pytest.raises(StoreUnavailable) as raised:
        open_store_from_settings(_settings(https_clickhouse, pki, password="not-" + PASSWORD))
    assert "store.password" in str(raised.value)
    assert PASSWORD not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_untrusted_server_certificate_names_store_ca_file(https_clickhouse: str, pki: Pki) -> None:
    with pytest.raises(StoreUnavailable, match=r"store\.ca_file"):
        open_store_from_settings(
            _settings(https_clickhouse, pki, password=PASSWORD, ca_file=str(pki.other_ca.cert_path))
        )
