"""Re-export of the shared assertion helpers for test modules, and admin tokens for tests."""

from __future__ import annotations

from collections.abc import Iterable

from slack_tools.configs.schema import AppConfig
from slack_tools.configs.security.tokens import issue_token
from tests.conftest import assert_no_secret

# The HS256 secret of test configurations (SLACK_TOOLS__SECURITY__JWT__SECRET).
TEST_JWT_SECRET = "test-jwt-secret-5f1c0e9a7b3d4c2e8a6f0b1d9c7e5a3f"  # nosec B105 - tests only
JWT_SECRET_VARIABLE = "SLACK_TOOLS__SECURITY__JWT__SECRET"  # nosec B105 - a name


def issue_test_token(
    roles: str | Iterable[str] = ("admin",),
    tenants: Iterable[str] = ("*",),
    *,
    subject: str = "tester",
    ttl: float = 3600,
    secret: str = TEST_JWT_SECRET,
    config: AppConfig | None = None,
) -> str:
    """An admin JWT signed with the tests' HS256 secret (or ``config``'s keys)."""
    if config is None:
        config = AppConfig.model_validate({"security": {"jwt": {"secret": secret}}})
    return issue_token(roles, tenants, ttl, subject, config=config)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of ``token``."""
    return {"Authorization": f"Bearer {token}"}


__all__ = [
    "JWT_SECRET_VARIABLE",
    "TEST_JWT_SECRET",
    "assert_no_secret",
    "bearer",
    "issue_test_token",
]
