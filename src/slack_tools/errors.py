"""The error tree: one root, a shallow set of kinds callers can tell apart."""

from __future__ import annotations


class SlackToolsError(Exception):
    """Root of every error slack-tools raises on purpose."""


class ConfigError(SlackToolsError):
    """Configuration that cannot be loaded, validated or applied."""


class SecretError(ConfigError):
    """An encrypted value that cannot be decrypted, or a key that is missing."""


class ConflictError(SlackToolsError):
    """A write based on a version that is no longer the current one."""


class NotFoundError(SlackToolsError):
    """A document, version, tenant or key that does not exist."""


class StorageError(SlackToolsError):
    """The database is unreachable or its schema is not the expected one."""


class AuthError(SlackToolsError):
    """Missing or invalid credentials, or not allowed to do this."""


class InvalidToken(AuthError):  # noqa: N818 - reads as what it is, like PermissionDenied
    """A bearer token that is missing, malformed, unsigned, expired or not ours (HTTP 401)."""


class PermissionDenied(AuthError):  # noqa: N818 - the name users and frameworks expect
    """An authenticated caller without the permission or the tenant it needs (HTTP 403)."""


class PayloadError(SlackToolsError):
    """A request body that is not a valid alert payload.

    ``malformed`` is true when the body is not JSON at all (HTTP 400); otherwise it
    parsed but does not match the schema (HTTP 422). ``errors`` names each field.
    """

    def __init__(
        self, message: str, *, malformed: bool = False, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.malformed = malformed
        self.errors = errors or []


class DeliveryError(SlackToolsError):
    """A notification that could not be delivered; ``reason`` becomes a metrics label."""

    def __init__(self, message: str, *, retryable: bool, reason: str) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.reason = reason
