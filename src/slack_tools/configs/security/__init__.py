"""Security: value encryption and key rotation, who is acting, and what they may do.

One face for the package; each concern lives in its own module: ``encryption``
(values, data keys, API keys), ``actors`` (the caller of the current operation),
``tokens`` (JWT verification and issue), ``rbac`` (roles, permissions and
``@require_permission``), ``audit`` (the hash-chained trail and ``@audit_action``)
and ``gdpr`` (``@gdpr_compliant``, the register, export and erasure).

The specification's decorators are importable from here, as it writes them::

    from slack_tools.configs.security import require_permission, audit_action, gdpr_compliant

``rbac``, ``audit`` and ``gdpr`` reach the configuration runtime and storage, which
themselves use encryption from this package; they are therefore loaded on first use
of one of their names rather than when the package is imported.
"""

import importlib
from typing import TYPE_CHECKING, Any

from slack_tools.configs.security.actors import (
    SYSTEM,
    Actor,
    acting_as,
    current_actor,
    local_admin,
)
from slack_tools.configs.security.encryption import (
    API_KEY_PREFIX,
    KEY_BYTES,
    PREFIX,
    TENANT_PREFIX,
    KeyProvider,
    NewApiKey,
    StaticKeyProvider,
    TenantCipher,
    ValueCipher,
    api_key_digest,
    build_key_provider,
    context_for,
    generate_key,
    is_encrypted,
    new_api_key,
    new_data_key,
    parse_keys,
    read_key_file,
    rewrap_data_key,
    unwrap_data_key,
)

__all__ = [
    "API_KEY_PREFIX",
    "KEY_BYTES",
    "PERMISSIONS",
    "PREFIX",
    "SYSTEM",
    "TENANT_PREFIX",
    "Actor",
    "AuditLog",
    "KeyProvider",
    "NewApiKey",
    "StaticKeyProvider",
    "TenantCipher",
    "ValueCipher",
    "acting_as",
    "api_key_digest",
    "audit_action",
    "authorize",
    "build_key_provider",
    "context_for",
    "current_actor",
    "erase_user",
    "export_user",
    "gdpr_compliant",
    "generate_key",
    "is_encrypted",
    "issue_token",
    "local_admin",
    "new_api_key",
    "new_data_key",
    "parse_keys",
    "read_key_file",
    "require_permission",
    "rewrap_data_key",
    "unwrap_data_key",
]

_LAZY = {
    "require_permission": "rbac",
    "authorize": "rbac",
    "PERMISSIONS": "rbac",
    "audit_action": "audit",
    "AuditLog": "audit",
    "gdpr_compliant": "gdpr",
    "export_user": "gdpr",
    "erase_user": "gdpr",
    "issue_token": "tokens",  # nosec B105 - a module name, not a password
}

if TYPE_CHECKING:
    from slack_tools.configs.security.audit import AuditLog, audit_action
    from slack_tools.configs.security.gdpr import erase_user, export_user, gdpr_compliant
    from slack_tools.configs.security.rbac import PERMISSIONS, authorize, require_permission
    from slack_tools.configs.security.tokens import issue_token


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
