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
