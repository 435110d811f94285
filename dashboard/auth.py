"""Who may see the dashboard: open on loopback, behind a login on any other address.

The login is Streamlit's OpenID Connect flow (``st.login``) when ``[dashboard]`` names an
identity provider, else a shared password (or token) from ``SAGASCOPE_DASHBOARD_PASSWORD`` or
``dashboard.password_file``, compared in constant time. Serving beyond loopback with neither
configured is refused at start-up.

Once the shared password was given, the browser keeps an admission cookie: a token signed
with a key this server process draws at random and keeps in memory (never the password), so
links and reloads, each a new Streamlit session, stay logged in until the token expires,
the viewer logs out, or the server restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from sagascope.exceptions import ConfigError
from sagascope.settings import DashboardSettings, secret

#: The browser cookie holding the admission token after the shared password was given.
ADMISSION_COOKIE = "sagascope_admission"
#: How long one password entry keeps a browser admitted: a day's on-call shift.
ADMISSION_TTL_S = 12 * 3600

#: Session-state keys: this session's admission token, and the cookie value this session
#: writes to the browser (empty after a logout: the cookie is cleared).
_TOKEN = "_sagascope_admission_token"
_COOKIE_WRITTEN = "_sagascope_admission_cookie"


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


class AdmissionTokens:
    """Signed, expiring admission tokens: ``<expires>.<nonce>.<hmac>``, revocable by nonce.

    The key is random per instance, so a restart voids every token; the nonce lets a logout
    void one token before it expires.
    """

    def __init__(self, ttl_s: float = ADMISSION_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = secrets.token_bytes(32)
        self._ttl_s = ttl_s
        self._clock = clock
        self._revoked: dict[str, int] = {}  # nonce -> its token's expiry, dropped after it
        self._lock = threading.Lock()  # sessions run on their own script threads

    def issue(self) -> str:
        expires = int(self._clock() + self._ttl_s)
        nonce = secrets.token_urlsafe(12)
        return f"{expires}.{nonce}.{self._sign(expires, nonce)}"

    def valid(self, token: str) -> bool:
        parts = self._parts(token)
        if parts is None:
            return False
        expires, nonce = parts
        with self._lock:
            revoked = nonce in self._revoked
        return not revoked and self._clock() < expires

    def revoke(self, token: str) -> None:
        parts = self._parts(token)
        if parts is None:
            return
        expires, nonce = parts
        now = self._clock()
        with self._lock:
            self._revoked = {n: e for n, e in self._revoked.items() if e > now}
            self._revoked[nonce] = expires

    def _parts(self, token: str) -> tuple[int, str] | None:
        """``(expires, nonce)`` of a token this instance signed, else None."""
        expires_text, _, rest = token.partition(".")
        nonce, _, signature = rest.partition(".")
        if not expires_text.isdigit() or not nonce:
            return None
        expected = self._sign(int(expires_text), nonce)
        if not hmac.compare_digest(signature.encode("ascii", "replace"), expected.encode("ascii")):
            return None
        return int(expires_text), nonce

    def _sign(self, expires: int, nonce: str) -> str:
        message = f"{expires}.{nonce}".encode("ascii")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


#: This server's tokens (the Streamlit script runs in the server's process).
_tokens = AdmissionTokens()


def admitted(settings: DashboardSettings) -> bool:
    """True when the viewer may see the pages (no login needed, or already logged in)."""
    import streamlit as st

    if not login_required(settings):
        return True
    if uses_oidc(settings):
        return _oidc_logged_in(st)
    return _admission_token(st) is not None


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
    if _admission_token(st) is not None:
        return
    _write_cookie(st, st)  # after a logout: clears the cookie
    st.title("sagascope")
    with st.form("sagascope_login", border=False):
        given = st.text_input("Password", type="password", key="_sagascope_password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        if password_matches(given, secret(settings, "password", "dashboard")):
            token = _tokens.issue()
            st.session_state[_TOKEN] = token
            st.session_state[_COOKIE_WRITTEN] = token
            st.rerun()
        st.error("Wrong password.")
    st.stop()


def session_controls(settings: DashboardSettings) -> None:
    """The sidebar's foot, when a login is required: "Log out", and (shared password) the
    admission cookie a session that just logged in writes, where its element shifts nothing."""
    import streamlit as st

    if not login_required(settings):
        return
    st.sidebar.button("Log out", key="_sagascope_logout",
                      on_click=st.logout if uses_oidc(settings) else _log_out)
    if not uses_oidc(settings):
        _write_cookie(st, st.sidebar)


def _log_out() -> None:
    """Void this session's token (other tabs holding it too) and clear the cookie."""
    import streamlit as st

    token = _admission_token(st)
    if token is not None:
        _tokens.revoke(token)
    st.session_state.pop(_TOKEN, None)
    st.session_state[_COOKIE_WRITTEN] = ""


def _admission_token(st: Any) -> str | None:
    """The valid token this session holds, or the browser sent when the session opened."""
    for token in (st.session_state.get(_TOKEN), st.context.cookies.get(ADMISSION_COOKIE)):
        if token and _tokens.valid(token):
            return str(token)
    return None


def _write_cookie(st: Any, container: Any) -> None:
    """Set (or, empty, clear) the admission cookie in the browser, on every run of a session
    that logged in or out: a rerun right after would otherwise unmount the script unrun.

    Streamlit has no cookie writer: a script in the page (``st.html``, not iframed) writes
    it on the dashboard's own origin. Not HttpOnly, so the page's scripts could read it;
    they are all the dashboard's. The token holds only an expiry, a nonce and a signature.
    """
    token = st.session_state.get(_COOKIE_WRITTEN)
    if token is None:
        return
    lifetime = f"max-age={ADMISSION_TTL_S}" if token else "max-age=0"
    container.html(
        "<script>document.cookie = "
        f"'{ADMISSION_COOKIE}={token}; path=/; {lifetime}; SameSite=Strict'"
        " + (location.protocol === 'https:' ? '; Secure' : '');</script>",
        unsafe_allow_javascript=True,
    )


def _oidc_logged_in(st: Any) -> bool:
    return bool(getattr(st.user, "is_logged_in", False))
