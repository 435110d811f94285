"""Who may see the dashboard: open on loopback, behind a login on any other address.

The login is Streamlit's OpenID Connect flow (``st.login``) when ``[dashboard]`` names an
identity provider, else a shared password (or token) from ``SAGASCOPE_DASHBOARD_PASSWORD`` or
``dashboard.password_file``, compared in constant time. Serving beyond loopback with neither
configured is refused at start-up.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import tempfile
from typing import Any

from sagascope.exceptions import ConfigError
from sagascope.settings import DashboardSettings, secret

#: Session-state key set once the shared password was given.
_ADMITTED = "_sagascope_admitted"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def uses_oidc(settings: DashboardSettings) -> bool:
    return bool(settings.oidc_server_metadata_url)


def login_required(settings: DashboardSettings) -> bool:
    return not is_loopback(settings.host)


def check_access(settings: DashboardSettings) -> None:
    """Refuse to serve beyond loopback without a login configured.

    Raises:
        ConfigError: naming the settings that would configure one.
    """
    if not login_required(settings):
        return
    if uses_oidc(settings):
        if not settings.oidc_client_id or not secret(settings, "oidc_client_secret", "dashboard"):
            raise ConfigError(
                "OIDC login needs dashboard.oidc_client_id and a client secret "
                "(SAGASCOPE_DASHBOARD_OIDC_CLIENT_SECRET or dashboard.oidc_client_secret_file)"
            )
        return
    if not secret(settings, "password", "dashboard"):
        raise ConfigError(
            f"the dashboard listens on {settings.host}, beyond loopback: configure a login, "
            "either a shared password (SAGASCOPE_DASHBOARD_PASSWORD or dashboard.password_file) "
            "or an identity provider (dashboard.oidc_server_metadata_url)"
        )


def write_oidc_secrets(settings: DashboardSettings) -> str:
    """Streamlit's ``secrets.toml`` with the ``[auth]`` table ``st.login`` reads; returns its path.

    Written at serve time into a private temporary file (mode 0600), with a fresh cookie
    secret: sessions do not outlive the server.
    """
    values = {
        "redirect_uri": settings.link_url + "/oauth2callback",
        "cookie_secret": secrets.token_urlsafe(32),
        "client_id": settings.oidc_client_id,
        "client_secret": secret(settings, "oidc_client_secret", "dashboard"),
        "server_metadata_url": settings.oidc_server_metadata_url,
    }
    lines = ["[auth]"] + [f"{key} = {_toml_string(value)}" for key, value in values.items()]
    handle, path = tempfile.mkstemp(prefix="sagascope-secrets-", suffix=".toml")
    with os.fdopen(handle, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _toml_string(value: str) -> str:
    escaped = "".join(
        {"\\": "\\\\", '"': '\\"'}.get(ch, ch) if ord(ch) >= 0x20 else f"\\u{ord(ch):04x}"
        for ch in value
    )
    return f'"{escaped}"'


def password_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (no timing hint of how much of the password was right)."""
    return bool(expected) and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def admitted(settings: DashboardSettings) -> bool:
    """True when the viewer may see the pages (no login needed, or already logged in)."""
    import streamlit as st

    if not login_required(settings):
        return True
    if uses_oidc(settings):
        return _oidc_logged_in(st)
    return bool(st.session_state.get(_ADMITTED))


def gate(settings: DashboardSettings) -> None:
    """Show the login and stop the page unless the viewer is admitted (or on loopback)."""
    import streamlit as st

    if not login_required(settings):
        return
    if uses_oidc(settings):
        if not _oidc_logged_in(st):
            st.title("sagascope")
            st.button("Log in", type="primary", on_click=st.login)
            st.stop()
        return
    if st.session_state.get(_ADMITTED):
        return
    st.title("sagascope")
    with st.form("sagascope_login", border=False):
        given = st.text_input("Password", type="password", key="_sagascope_password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        if password_matches(given, secret(settings, "password", "dashboard")):
            st.session_state[_ADMITTED] = True
            st.rerun()
        st.error("Wrong password.")
    st.stop()


def _oidc_logged_in(st: Any) -> bool:
    return bool(getattr(st.user, "is_logged_in", False))
