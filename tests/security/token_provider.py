"""An OAUTHBEARER token provider as users write one: ``module:callable`` returning a token."""

from __future__ import annotations

calls: list[str] = []


def fetch_token() -> str:
    calls.append("fetch_token")
    return "token-from-the-identity-provider"


def fetch_token_with_expiry() -> tuple[str, float]:
    return "expiring-token", 4102444800.0
