"""Key rotation: re-encrypt every stored secret with the active master key.

Files are rewritten with ruamel.yaml's round-trip mode, so comments, order and
layout survive; only the ``enc:v1:`` values change. Database documents are
re-encrypted in every version, history included, so that the old key can be
removed without leaving versions that only it can read.
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
from slack_tools.configs.provenance import dotted
from slack_tools.errors import ConfigError
from slack_tools.storage import DocumentStore


@dataclass(frozen=True)
class RotationReport:
    files: dict[str, int]
    versions: int
    values_in_documents: int


def _reseal_tree(node: Any, path: tuple[str | int, ...], cipher: security.ValueCipher) -> int:
    changed = 0
    if isinstance(node, CommentedMap):
        items: list[tuple[Any, Any]] = list(node.items())
    elif isinstance(node, CommentedSeq):
        items = list(enumerate(node))
    else:
        return 0
    for key, value in items:
        child = (*path, key)
        if isinstance(value, str) and security.is_encrypted(value):
            renewed = cipher.reencrypt(str(value), security.context_for(dotted(child)))
            if renewed != value:
                node[key] = renewed
                changed += 1
        else:
            changed += _reseal_tree(value, child, cipher)
    return changed


def rotate_file(path: Path, cipher: security.ValueCipher) -> int:
    """Re-encrypt a YAML file's values in place; returns how many changed."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    try:
        document = yaml.load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    changed = _reseal_tree(document, (), cipher)
    if changed:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            yaml.dump(document, out)
        Path(temporary).chmod(path.stat().st_mode)
        Path(temporary).replace(path)
    return changed


def rotate_documents(store: DocumentStore, cipher: security.ValueCipher) -> tuple[int, int]:
    """Re-encrypt every version of every document; returns (versions, values) changed."""
    versions = values = 0
    for version in store.all_versions():
        content, changed = documents.reseal(version.key, version.content, cipher)
        if changed:
            store.reseal_version(version.change_id, content)
            versions += 1
            values += changed
    return versions, values
