"""Encryption of sensitive configuration values, in the manner of SOPS.

A value is stored as ``enc:v1:<key-id>:<base64(nonce || ciphertext)>``: AES-256-GCM
with a random 96-bit nonce and the value's *context* — its scope and key path,
``global/slack.bot_token`` or ``tenant/<id>/slack_bot_token`` — as associated
data. The key path is therefore bound to the value: the same ciphertext pasted
under another key, or into another tenant's document, fails to decrypt.

Master keys come from a :class:`KeyProvider`; the environment
(``SLACK_TOOLS_MASTER_KEYS="id1:base64,id2:base64"``) and key files are built
in. Anything with the same two methods can stand in: a KMS or HSM provider would
return data keys it unwraps (envelope encryption), never its own master key.
The first key is active; the others only decrypt, until they are removed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from slack_tools.errors import SecretError

PREFIX = "enc:v1:"
TENANT_PREFIX = "enc:t1:"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOKEN = re.compile(r"^enc:v1:([A-Za-z0-9_-]{1,64}):([A-Za-z0-9+/=]+)$")
_NONCE_BYTES = 12
KEY_BYTES = 32


def is_encrypted(value: object) -> bool:
    """Whether ``value`` is written encrypted (``enc:v1:`` master key, ``enc:t1:`` tenant key)."""
    return isinstance(value, str) and value.startswith("enc:")


def context_for(path: str, *, tenant: str | None = None, user: str | None = None) -> str:
    """The associated data of a value at dotted ``path`` in a global, tenant or user document."""
    if user is not None:
        return f"user/{tenant}/{user}/{path}"
    if tenant is not None:
        return f"tenant/{tenant}/{path}"
    return f"global/{path}"


class KeyProvider(Protocol):
    """Where master keys come from; the first of ``key_ids`` encrypts."""

    def key_ids(self) -> Sequence[str]: ...

    def key(self, key_id: str) -> bytes: ...


@dataclass(frozen=True)
class StaticKeyProvider:
    """Keys held in memory, read once from the environment or a key file."""

    keys: Mapping[str, bytes]
    order: tuple[str, ...]
    source: str

    def key_ids(self) -> Sequence[str]:
        return self.order

    def key(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise SecretError(
                f"unknown key id {key_id!r}: {self.source} holds {', '.join(self.order)}"
            ) from None

    def __repr__(self) -> str:
        return f"StaticKeyProvider(ids={self.order!r}, source={self.source!r})"


def parse_keys(entries: Sequence[str], source: str) -> StaticKeyProvider:
    """Parse ``id:base64`` entries; the first one becomes the active key."""
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for number, entry in enumerate(entries, start=1):
        key_id, sep, encoded = entry.strip().partition(":")
        where = f"{source}, entry {number}"
        if not sep or not _KEY_ID.match(key_id):
            raise SecretError(
                f"{where}: expected 'id:base64' with an id of letters, digits, - or _"
            )
        try:
            material = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise SecretError(f"{where} ({key_id}): the key is not valid base64") from None
        if len(material) != KEY_BYTES:
            raise SecretError(
                f"{where} ({key_id}): a key must be {KEY_BYTES} bytes (AES-256), "
                f"not {len(material)}"
            )
        if key_id in keys:
            raise SecretError(f"{where}: key id {key_id!r} appears twice")
        keys[key_id] = material
        order.append(key_id)
    if not order:
        raise SecretError(f"{source}: no key")
    return StaticKeyProvider(keys, tuple(order), source)


def read_key_file(path: Path) -> StaticKeyProvider:
    """Keys from a file, one ``id:base64`` per line; blank lines and ``#`` comments skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretError(f"cannot read key file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SecretError(
            f"cannot read key file {path}: not text; expected lines of 'id:base64'"
        ) from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return parse_keys(lines, f"key file {path}")


def build_key_provider(
    master_keys: SecretStr | None, key_file: str | None
) -> StaticKeyProvider | None:
    """The provider the configuration asks for, or None when no key is configured."""
    if master_keys is not None and master_keys.get_secret_value().strip():
        entries = master_keys.get_secret_value().split(",")
        return parse_keys([e for e in entries if e.strip()], "SLACK_TOOLS_MASTER_KEYS")
    if key_file:
        # A relative path is relative to the working directory, like every other path
        # in the configuration (data_dir); absolute paths are the safe choice.
        return read_key_file(Path(key_file))
    return None


def generate_key() -> str:
    """A fresh random AES-256 key, base64-encoded."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


class ValueCipher:
    """Encrypts and decrypts single values bound to their context."""

    def __init__(self, keys: KeyProvider) -> None:
        self._keys = keys

    @property
    def keys(self) -> KeyProvider:
        return self._keys

    @property
    def active_key_id(self) -> str:
        return self._keys.key_ids()[0]

    def encrypt(self, plaintext: str, context: str) -> str:
        key_id = self.active_key_id
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._keys.key(key_id)).encrypt(
            nonce, plaintext.encode("utf-8"), context.encode("utf-8")
        )
        return f"{PREFIX}{key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def key_id_of(self, token: str, context: str) -> str:
        if token.startswith(TENANT_PREFIX):
            raise SecretError(
                f"{context}: encrypted with its tenant's data key (partial isolation), "
                "not a master key"
            )
        found = _TOKEN.match(token)
        if found is None:
            raise SecretError(f"{context}: not a valid enc:v1:<key-id>:<base64> value")
        return found.group(1)

    def decrypt(self, token: str, context: str) -> str:
        key_id = self.key_id_of(token, context)
        try:
            key = self._keys.key(key_id)
        except SecretError as exc:
            raise SecretError(f"{context}: {exc}") from None
        altered = SecretError(
            f"{context}: cannot decrypt with key {key_id!r}: the value was altered, "
            "or it was encrypted for another key path or tenant"
        )
        try:
            raw = base64.b64decode(token.rsplit(":", 1)[1], validate=True)
        except (binascii.Error, ValueError):
            raise altered from None
        nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        try:
            plain = AESGCM(key).decrypt(nonce, sealed, context.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise altered from None
        return plain.decode("utf-8")

    def reencrypt(self, token: str, context: str) -> str:
        """The same value under the active key (unchanged if it already uses it).

        A value under a tenant's data key is left as it is: rotating the master key
        re-wraps that data key instead.
        """
        if token.startswith(TENANT_PREFIX) or self.key_id_of(token, context) == self.active_key_id:
            return token
        return self.encrypt(self.decrypt(token, context), context)


def _data_key_context(tenant_id: str) -> str:
    return f"tenant-data-key/{tenant_id}"


def new_data_key(master: ValueCipher, tenant_id: str) -> tuple[bytes, str]:
    """A fresh tenant data key and its wrapped form (encrypted by the master key) to store."""
    key = os.urandom(KEY_BYTES)
    wrapped = master.encrypt(base64.b64encode(key).decode("ascii"), _data_key_context(tenant_id))
    return key, wrapped


def unwrap_data_key(master: ValueCipher, tenant_id: str, wrapped: str) -> bytes:
    """The tenant data key a wrapped form holds (bound to its tenant)."""
    return base64.b64decode(master.decrypt(wrapped, _data_key_context(tenant_id)))


def rewrap_data_key(master: ValueCipher, tenant_id: str, wrapped: str) -> str:
    """The wrapped form under the master's active key."""
    return master.reencrypt(wrapped, _data_key_context(tenant_id))


class TenantCipher(ValueCipher):
    """A partially isolated tenant's values, under its own data key.

    Writes ``enc:t1:<base64>`` (AES-256-GCM, the value's key path as associated
    data, like the master key's values); reads those and the master key's values
    the tenant had before. The data key is stored only wrapped by the master key:
    deleting it makes every ``enc:t1:`` value of the tenant unreadable, wherever a
    copy of it survives (crypto-shredding).
    """

    def __init__(self, master: ValueCipher, data_key: bytes) -> None:
        super().__init__(master.keys)
        self._data_key = data_key

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._data_key).encrypt(
            nonce, plaintext.encode("utf-8"), context.encode("utf-8")
        )
        return f"{TENANT_PREFIX}{base64.b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, token: str, context: str) -> str:
        if not token.startswith(TENANT_PREFIX):
            return super().decrypt(token, context)
        altered = SecretError(
            f"{context}: cannot decrypt with the tenant's data key: the value was altered, "
            "belongs to another key path or tenant, or the tenant's key was destroyed"
        )
        try:
            raw = base64.b64decode(token.removeprefix(TENANT_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise altered from None
        nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        try:
            plain = AESGCM(self._data_key).decrypt(nonce, sealed, context.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise altered from None
        return plain.decode("utf-8")

    def reencrypt(self, token: str, context: str) -> str:
        """A master-key value moved under the tenant's data key; tenant values stay."""
        if token.startswith(TENANT_PREFIX):
            return token
        return self.encrypt(super().decrypt(token, context), context)


# --- API keys -----------------------------------------------------------------------------

API_KEY_PREFIX = "stk_"
_API_KEY_SHOWN = 12  # characters kept in clear so people can tell their keys apart


@dataclass(frozen=True)
class NewApiKey:
    """A freshly generated key: shown once, then only its digest and prefix are kept."""

    key: str
    prefix: str
    digest: str

    def __repr__(self) -> str:
        return f"NewApiKey(prefix={self.prefix!r})"


def api_key_digest(key: str) -> str:
    """The stored form of an API key: SHA-256 of it.

    Keys are 256 random bits, so a fast digest is as safe as a slow password hash
    and keeps the lookup on the hot path to one indexed read.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key() -> NewApiKey:
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return NewApiKey(key, key[:_API_KEY_SHOWN], api_key_digest(key))
