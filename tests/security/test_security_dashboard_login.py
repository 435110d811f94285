"""The dashboard beyond loopback asks for a login; on loopback it stays open."""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import end
from waiting import wait_until

from sagascope.dashboard import auth
from sagascope.embedded import free_port
from sagascope.exceptions import ConfigError
from sagascope.settings import DashboardSettings
from tests.security.clirun import sagascope, start_sagascope, wait_for_log

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"


def test_loopback_needs_no_login_and_any_other_address_does() -> None:
    assert not auth.login_required(DashboardSettings(host="127.0.0.1"))
    assert not auth.login_required(DashboardSettings(host="::1"))
    assert not auth.login_required(DashboardSettings(host="localhost"))
    assert auth.login_required(DashboardSettings(host="0.0.0.0"))
    assert auth.login_required(DashboardSettings(host="10.1.2.3"))


def test_serving_beyond_loopback_without_a_login_is_refused_naming_the_settings() -> None:
    with pytest.raises(ConfigError, match="SAGASCOPE_DASHBOARD_PASSWORD"):
        auth.check_access(DashboardSettings(host="0.0.0.0"))
    auth.check_access(DashboardSettings(host="0.0.0.0", password=PASSWORD))


def test_password_comes_from_its_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    settings = DashboardSettings(host="0.0.0.0", password_file=str(tmp_path / "pw"))
    auth.check_access(settings)
    assert auth.password_matches(PASSWORD, PASSWORD)
    assert not auth.password_matches(PASSWORD + "x", PASSWORD)
    assert not auth.password_matches("", "")


def test_an_admission_token_is_valid_until_it_expires() -> None:
    now = [1_000_000.0]
    tokens = auth.AdmissionTokens(ttl_s=60, clock=lambda: now[0])
    token = tokens.issue()
    assert tokens.valid(token)
    now[0] += 59
    assert tokens.valid(token)
    now[0] += 1
    assert not tokens.valid(token)


def test_a_token_with_a_changed_expiry_or_signature_is_refused() -> None:
    tokens = auth.AdmissionTokens()
    expires, nonce, signature = tokens.issue().split(".")
    assert not tokens.valid(f"{int(expires) + 3600}.{nonce}.{signature}")
    assert not tokens.valid(f"{expires}.{nonce}.{'0' * len(signature)}")
    assert not tokens.valid(f"{expires}.{nonce}.é")
    assert not tokens.valid("")


def test_a_token_from_another_server_is_refused() -> None:
    """A restart draws a new key: the tokens it gave before stop working."""
    assert not auth.AdmissionTokens().valid(auth.AdmissionTokens().issue())


def test_a_revoked_token_is_refused_and_others_stay_valid() -> None:
    tokens = auth.AdmissionTokens()
    logged_out, other = tokens.issue(), tokens.issue()
    tokens.revoke(logged_out)
    assert not tokens.valid(logged_out)
    assert tokens.valid(other)


def test_oidc_secrets_file_holds_streamlits_auth_table_readable_only_by_us() -> None:
    settings = DashboardSettings(
        host="0.0.0.0", public_url="https://sagas.example.com/",
        oidc_server_metadata_url="https://idp.example.com/.well-known/openid-configuration",
        oidc_client_id="sagascope", oidc_client_secret='s3"cr\\et',
    )
    auth.check_access(settings)
    path = Path(auth.write_oidc_secrets(settings))
    try:
        table = tomllib.loads(path.read_text())["auth"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        path.unlink()
    assert table["redirect_uri"] == "https://sagas.example.com/oauth2callback"
    assert table["client_secret"] == 's3"cr\\et'
    assert table["server_metadata_url"].endswith("openid-configuration")
    assert len(table["cookie_secret"]) >= 32


def test_oidc_without_client_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="oidc_client_secret"):
        auth.check_access(DashboardSettings(
            host="0.0.0.0", oidc_server_metadata_url="https://idp/x", oidc_client_id="c",
        ))


def test_dashboard_command_refuses_an_open_non_loopback_address(tmp_path: Path) -> None:
    result = sagascope(
        ["dashboard", "--host", "0.0.0.0", "--port", str(free_port()), "--store-path",
         str(tmp_path / "store")], tmp_path, timeout_s=60,
    )
    assert result.returncode == 2
    assert "dashboard.password_file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def guarded_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``sagascope dashboard`` on 0.0.0.0 with a shared password from the environment."""
    directory = tmp_path_factory.mktemp("guarded")
    port = free_port()
    log = directory / "dashboard.log"
    process = start_sagascope(
        ["dashboard", "--host", "0.0.0.0", "--port", str(port), "--store-path",
         str(directory / "store")],
        directory, env={"SAGASCOPE_DASHBOARD_PASSWORD": PASSWORD}, log=log,
    )
    try:
        wait_for_log(process, log, "sagascope dashboard:", 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        end(process, grace_s=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


def _login(page: Any, url: str, password: str) -> None:
    page.goto(url)
    field = page.get_by_label("Password", exact=True)
    field.wait_for(timeout=30000)
    field.fill(password)
    page.get_by_role("button", name="Log in").click()


def _admission_cookie(context: Any) -> str:
    return next((c["value"] for c in context.cookies() if c["name"] == auth.ADMISSION_COOKIE), "")


def _logged_in_context(browser: Any, url: str) -> Any:
    """A browser context (its own cookie jar) that logged in and holds the admission cookie."""
    context = browser.new_context()
    page = context.new_page()
    _login(page, url, PASSWORD)
    page.get_by_role("link", name="Flow explorer").wait_for(timeout=30000)
    wait_until(lambda: _admission_cookie(context), what="the admission cookie")
    page.close()
    return context


def _admits(browser: Any, url: str, token: str) -> bool:
    """True when a fresh browser holding only ``token`` as its admission cookie sees the pages."""
    context = browser.new_context()
    try:
        context.add_cookies([{"name": auth.ADMISSION_COOKIE, "url": url, "value": token}])
        page = context.new_page()
        page.goto(url)
        return _shows_pages(page)
    finally:
        context.close()


def _shows_pages(page: Any) -> bool:
    """True once the page shows the navigation, False once it asks for the password."""
    page.get_by_role("link", name="Flow explorer").or_(
        page.get_by_label("Password", exact=True)).first.wait_for(timeout=30000)
    return page.get_by_role("link", name="Flow explorer").count() > 0


@pytest.mark.browser
@pytest.mark.slow
def test_wrong_password_is_refused_in_the_browser(guarded_dashboard: str, browser: Any) -> None:
    page = browser.new_page()
    try:
        _login(page, guarded_dashboard, "not the password")
        page.get_by_text("Wrong password.").wait_for(timeout=30000)
        assert page.get_by_role("link", name="Flow explorer").count() == 0
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_right_password_admits_to_the_pages(guarded_dashboard: str, browser: Any) -> None:
    page = browser.new_page()
    try:
        _login(page, guarded_dashboard, PASSWORD)
        page.get_by_role("link", name="Flow explorer").wait_for(timeout=30000)
        # Streamlit keeps the previous run's elements until the new run replaces them.
        page.get_by_label("Password", exact=True).wait_for(state="detached", timeout=30000)
        assert page.get_by_text("Wrong password.").count() == 0
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_a_login_holds_across_page_loads_and_tabs(guarded_dashboard: str, browser: Any) -> None:
    """A link is a full page load, a new Streamlit session: the cookie admits it."""
    context = _logged_in_context(browser, guarded_dashboard)
    try:
        cookie = next(c for c in context.cookies() if c["name"] == auth.ADMISSION_COOKIE)
        assert cookie["sameSite"] == "Strict" and cookie["path"] == "/"
        assert PASSWORD not in cookie["value"]
        page = context.new_page()
        page.goto(f"{guarded_dashboard}/sagas?status=failed")
        assert _shows_pages(page)
        assert "status=failed" in page.url
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.slow
def test_a_forged_admission_cookie_is_refused(guarded_dashboard: str, browser: Any) -> None:
    assert not _admits(browser, guarded_dashboard, f"99999999999.forged.{'0' * 64}")


@pytest.mark.browser
@pytest.mark.slow
def test_logging_out_asks_for_the_password_again(guarded_dashboard: str, browser: Any) -> None:
    """The cookie is cleared, and its token stops working even if it was kept elsewhere."""
    context = _logged_in_context(browser, guarded_dashboard)
    try:
        token = _admission_cookie(context)
        assert _admits(browser, guarded_dashboard, token)  # so the refusal below means the logout
        page = context.new_page()
        page.goto(f"{guarded_dashboard}/sagas")
        page.get_by_role("button", name="Log out").click()
        page.get_by_label("Password", exact=True).wait_for(timeout=30000)
        wait_until(lambda: not _admission_cookie(context), what="the cookie cleared")
    finally:
        context.close()
    assert not _admits(browser, guarded_dashboard, token)
