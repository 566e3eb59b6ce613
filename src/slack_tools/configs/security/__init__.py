"""Security: value encryption and key rotation, who is acting, and what they may do.

One face for the package; each concern lives in its own module:
``encryption`` (values, data keys, API keys) and ``actors`` (the caller of the
current operation).
"""

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
    "PREFIX",
    "SYSTEM",
    "TENANT_PREFIX",
    "Actor",
    "KeyProvider",
    "NewApiKey",
    "StaticKeyProvider",
    "TenantCipher",
    "ValueCipher",
    "acting_as",
    "api_key_digest",
    "build_key_provider",
    "context_for",
    "current_actor",
    "generate_key",
    "is_encrypted",
    "local_admin",
    "new_api_key",
    "new_data_key",
    "parse_keys",
    "read_key_file",
    "rewrap_data_key",
    "unwrap_data_key",
]
