"""Key rotation: re-encrypt every stored secret with the active master key.

In files only the ``enc:v1:`` tokens change; every other byte stays as written.
Database documents are re-encrypted in every version, history included, so that
the old key can be removed without leaving versions that only it can read.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from slack_tools.configs import documents, security
from slack_tools.configs.config_loader import parse_yaml_layer
from slack_tools.configs.provenance import dotted
from slack_tools.configs.security.audit import AuditLog
from slack_tools.configs.validator import ConfigValidationError
from slack_tools.errors import ConfigError
from slack_tools.storage import DocumentStore
from slack_tools.storage.documents import RoutedDocumentStore
from slack_tools.storage.tenants import TenantStore


@dataclass(frozen=True)
class RotationReport:
    files: dict[str, int]
    versions: int
    values_in_documents: int


def _renewals(
    node: Any, path: tuple[str | int, ...], cipher: security.ValueCipher
) -> dict[str, str]:
    """Old token → new token for every value of the tree not under the active key."""
    if isinstance(node, CommentedMap):
        items: list[tuple[Any, Any]] = list(node.items())
    elif isinstance(node, CommentedSeq):
        items = list(enumerate(node))
    else:
        return {}
    renewals: dict[str, str] = {}
    for key, value in items:
        child = (*path, key)
        if isinstance(value, str) and security.is_encrypted(value):
            renewed = cipher.reencrypt(str(value), security.context_for(dotted(child)))
            if renewed != value:
                renewals[str(value)] = renewed
        else:
            renewals.update(_renewals(value, child, cipher))
    return renewals


def rotate_file(path: Path, cipher: security.ValueCipher) -> int:
    """Re-encrypt a YAML file's values in place; returns how many changed.

    The file is parsed only to learn each value's key path (its context); the new
    tokens then replace the old ones in the text itself, so every other byte of
    the file — layout, comments, quoting — stays as the operator wrote it. Each
    token is unique (random nonce), so a textual replacement cannot hit anything else.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8"
        raise ConfigError(f"{path}: cannot read: {reason}") from None
    layer, issues = parse_yaml_layer(text, str(path), {})
    if layer is None:  # not YAML: report where, never the text (it may hold a secret)
        raise ConfigValidationError(issues)
    renewals = _renewals(YAML(typ="rt").load(text), (), cipher)
    for old, new in renewals.items():
        text = text.replace(old, new)
    if renewals:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        Path(temporary).chmod(path.stat().st_mode)
        Path(temporary).replace(path)
    return len(renewals)


def rotate_documents(
    store: DocumentStore | RoutedDocumentStore, cipher: security.ValueCipher
) -> tuple[int, int]:
    """Re-encrypt every version of every document (in every database); returns
    (versions, values) changed."""
    versions = values = 0
    stores = store.stores() if isinstance(store, RoutedDocumentStore) else [store]
    for one in stores:
        for version in one.all_versions():
            content, changed = documents.reseal(version.key, version.content, cipher)
            if changed:
                one.reseal_version(version.change_id, content)
                versions += 1
                values += changed
    return versions, values


def rotate_audit_key(log: AuditLog, cipher: security.ValueCipher) -> bool:
    """Re-wrap the audit trail's pseudonym key with the active master key; whether it changed.

    The key itself stays, so every pseudonym stays the same.
    """
    return log.rewrap_key(cipher)


def record_rotation(log: AuditLog, cipher: security.ValueCipher, counts: dict[str, int]) -> None:
    """Audit a rotation run: which key is now active and how much was re-encrypted."""
    log.record("keys.rotate", target=f"master-key:{cipher.active_key_id}", diff=counts)


def rotate_data_keys(store: TenantStore, cipher: security.ValueCipher) -> int:
    """Re-wrap every tenant data key with the active master key; returns how many changed.

    The tenants' values stay as they are: only the wrapping of their key changes.
    """
    changed = 0
    for tenant_id, wrapped in store.data_keys().items():
        rewrapped = security.rewrap_data_key(cipher, tenant_id, wrapped)
        if rewrapped != wrapped:
            store.rewrap_data_key(tenant_id, rewrapped)
            changed += 1
    return changed
