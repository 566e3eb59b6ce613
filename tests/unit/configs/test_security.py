"""Value encryption (enc:v1 AES-256-GCM bound to its context) and master-key parsing."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from slack_tools.configs.security import (
    KEY_BYTES,
    TENANT_PREFIX,
    TenantCipher,
    ValueCipher,
    build_key_provider,
    context_for,
    generate_key,
    is_encrypted,
    new_data_key,
    parse_keys,
    read_key_file,
    unwrap_data_key,
)
from slack_tools.errors import SecretError
from tests.helpers import assert_no_secret

TOKEN = "xoxb-1234567890123-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
TENANT_CONTEXT = "tenant/acme/slack_bot_token"
PREFIX_OF = re.compile(r"^enc:v1:([A-Za-z0-9_-]+):(.*)$")


def cipher_for(*entries: str) -> ValueCipher:
    """A cipher over ``id:base64`` entries, the first active."""
    return ValueCipher(parse_keys(list(entries), "test keys"))


def payload_of(token: str) -> str:
    """The base64 part of an ``enc:v1:<id>:<base64>`` token."""
    found = PREFIX_OF.match(token)
    assert found is not None, token
    return found.group(2)


def with_payload(token: str, payload: str) -> str:
    """``token`` with its base64 part replaced."""
    return token[: len(token) - len(payload_of(token))] + payload


def material(entry: str) -> str:
    """The base64 key material of an ``id:base64`` entry."""
    return entry.partition(":")[2]


# --- round trip and token form ----------------------------------------------------------


@pytest.mark.parametrize(
    "plaintext",
    [TOKEN, "", "mot de passe é 🔑 ü", "x" * 10_000, "enc:v1:k1:AAAA"],
    ids=["slack-token", "empty", "unicode", "long", "looks-encrypted"],
)
def test_encrypt_then_decrypt_returns_the_value(master_keys: str, plaintext: str) -> None:
    """A value encrypted for a context decrypts back to itself under the same context."""
    cipher = cipher_for(master_keys)
    token = cipher.encrypt(plaintext, TENANT_CONTEXT)
    assert cipher.decrypt(token, TENANT_CONTEXT) == plaintext


@settings(deadline=None, max_examples=50)
@given(plaintext=st.text(), context=st.text(min_size=1))
def test_round_trip_holds_for_any_text_and_context(plaintext: str, context: str) -> None:
    """Any text encrypted under any context decrypts back to itself under that context."""
    cipher = cipher_for(f"k1:{generate_key()}")
    assert cipher.decrypt(cipher.encrypt(plaintext, context), context) == plaintext


def test_every_encryption_of_a_value_differs(master_keys: str) -> None:
    """Encrypting the same value twice never gives the same token (a fresh random nonce)."""
    cipher = cipher_for(master_keys)
    tokens = [cipher.encrypt(TOKEN, TENANT_CONTEXT) for _ in range(50)]
    nonces = {base64.b64decode(payload_of(t))[:12] for t in tokens}
    assert len(set(tokens)) == 50
    assert len(nonces) == 50
    assert all(cipher.decrypt(t, TENANT_CONTEXT) == TOKEN for t in tokens)


def test_token_has_the_enc_v1_form_with_the_active_key_id() -> None:
    """A token is enc:v1:<active id>:<base64 of 12-byte nonce + ciphertext + 16-byte tag>."""
    cipher = cipher_for(f"current:{generate_key()}", f"old:{generate_key()}")
    token = cipher.encrypt(TOKEN, TENANT_CONTEXT)
    assert re.fullmatch(r"enc:v1:current:[A-Za-z0-9+/]+={0,2}", token)
    assert len(base64.b64decode(payload_of(token))) == 12 + len(TOKEN.encode()) + 16
    assert TOKEN not in token
    assert is_encrypted(token)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("enc:v1:k1:AAAA", True),
        ("enc:", True),
        ("xoxb-123", False),
        ("", False),
        (None, False),
        (42, False),
        (["enc:v1:k1:AAAA"], False),
    ],
)
def test_is_encrypted_recognises_the_enc_form(value: object, expected: bool) -> None:
    """Only strings starting with ``enc:`` count as encrypted values."""
    assert is_encrypted(value) is expected


@pytest.mark.parametrize(
    ("path", "tenant", "user", "expected"),
    [
        ("slack.bot_token", None, None, "global/slack.bot_token"),
        ("slack_bot_token", "acme", None, "tenant/acme/slack_bot_token"),
        ("locale", "acme", "bob", "user/acme/bob/locale"),
    ],
)
def test_context_is_scope_plus_key_path(
    path: str, tenant: str | None, user: str | None, expected: str
) -> None:
    """The associated data names the scope (global, tenant, user) and the dotted key path."""
    assert context_for(path, tenant=tenant, user=user) == expected


# --- refusals -----------------------------------------------------------------------------


def _flip_middle_char(token: str) -> str:
    payload = payload_of(token)
    middle = len(payload) // 2
    replacement = "A" if payload[middle] != "A" else "B"
    return with_payload(token, payload[:middle] + replacement + payload[middle + 1 :])


def _flip_byte(index: int) -> Callable[[str], str]:
    def tamper(token: str) -> str:
        raw = bytearray(base64.b64decode(payload_of(token)))
        raw[index] ^= 0x01
        return with_payload(token, base64.b64encode(bytes(raw)).decode())

    return tamper


@pytest.mark.parametrize(
    "tamper",
    [
        _flip_middle_char,
        _flip_byte(0),
        _flip_byte(20),
        _flip_byte(-1),
        lambda t: t[:-1],
        lambda t: with_payload(t, payload_of(t).rstrip("=")),
        lambda t: t[:-4],
        lambda t: with_payload(t, payload_of(t)[:16]),
        lambda t: with_payload(t, ""),
        lambda t: with_payload(t, "AAAA"),
        lambda t: with_payload(t, payload_of(t)[:8] + "!" + payload_of(t)[9:]),
        lambda t: t.replace("enc:v1:", "enc:v2:"),
    ],
    ids=[
        "flip-a-base64-char",
        "flip-a-nonce-byte",
        "flip-a-ciphertext-byte",
        "flip-a-tag-byte",
        "truncate-one-char",
        "strip-base64-padding",
        "truncate-four-chars",
        "keep-only-the-nonce",
        "keep-only-the-prefix",
        "too-short-for-a-nonce",
        "non-base64-char",
        "unknown-format-version",
    ],
)
def test_altered_token_is_refused_naming_the_context(
    master_keys: str, tamper: Callable[[str], str]
) -> None:
    """An altered or truncated token raises SecretError naming the context, never the value."""
    cipher = cipher_for(master_keys)
    token = cipher.encrypt(TOKEN, TENANT_CONTEXT)
    altered = tamper(token)
    assert altered != token
    with pytest.raises(SecretError, match=re.escape(TENANT_CONTEXT)) as caught:
        cipher.decrypt(altered, TENANT_CONTEXT)
    assert_no_secret(str(caught.value), TOKEN, material(master_keys))


@pytest.mark.parametrize(
    "other_context",
    [
        "tenant/globex/slack_bot_token",
        "global/slack.bot_token",
        "tenant/acme/slack_channel",
        "user/acme/bob/slack_bot_token",
        "tenant/acme/slack_bot_token ",
    ],
    ids=["another-tenant", "global-scope", "another-key-path", "user-scope", "trailing-space"],
)
def test_value_under_another_context_does_not_decrypt(master_keys: str, other_context: str) -> None:
    """A token copied to another key path or tenant fails with an error naming where it was read."""
    cipher = cipher_for(master_keys)
    token = cipher.encrypt(TOKEN, TENANT_CONTEXT)
    with pytest.raises(SecretError, match=re.escape(other_context)) as caught:
        cipher.decrypt(token, other_context)
    assert "another key path or tenant" in str(caught.value)
    assert_no_secret(str(caught.value), TOKEN, material(master_keys))


def test_unknown_key_id_is_refused_naming_context_and_id(master_keys: str) -> None:
    """A token made with a key the provider does not hold names the context and the missing id."""
    foreign_entry = f"k9:{generate_key()}"
    token = cipher_for(foreign_entry).encrypt(TOKEN, TENANT_CONTEXT)
    with pytest.raises(SecretError, match=re.escape(TENANT_CONTEXT)) as caught:
        cipher_for(master_keys).decrypt(token, TENANT_CONTEXT)
    message = str(caught.value)
    assert "'k9'" in message
    assert "k1" in message
    assert_no_secret(message, TOKEN, material(master_keys), material(foreign_entry))


# --- key parsing --------------------------------------------------------------------------


def test_several_keys_first_is_active_and_old_ones_still_decrypt() -> None:
    """With several keys the first encrypts, and values made under the others still decrypt."""
    old_entry, new_entry = f"old:{generate_key()}", f"new:{generate_key()}"
    old_token = cipher_for(old_entry).encrypt(TOKEN, TENANT_CONTEXT)
    provider = parse_keys([new_entry, old_entry], "test keys")
    cipher = ValueCipher(provider)
    assert tuple(provider.key_ids()) == ("new", "old")
    assert cipher.active_key_id == "new"
    assert cipher.encrypt(TOKEN, TENANT_CONTEXT).startswith("enc:v1:new:")
    assert cipher.decrypt(old_token, TENANT_CONTEXT) == TOKEN
    assert provider.key("old") == base64.b64decode(material(old_entry))


def test_entries_are_stripped_of_surrounding_spaces() -> None:
    """Spaces around an entry (as after a comma in the variable) are ignored."""
    key = generate_key()
    provider = parse_keys([f"  k1:{key}  "], "test keys")
    assert provider.key("k1") == base64.b64decode(key)


GOOD = generate_key()
OTHER = generate_key()
SHORT = base64.b64encode(b"\x01" * 16).decode()
LONG = base64.b64encode(b"\x02" * 64).decode()


@pytest.mark.parametrize(
    ("entries", "fragments"),
    [
        (["k1:not*base64!"], ["entry 1", "k1", "not valid base64"]),
        (["k1:" + GOOD[:-2]], ["entry 1", "not valid base64"]),
        (["k1:" + SHORT], ["entry 1", f"{KEY_BYTES} bytes", "not 16"]),
        (["k1:" + LONG], ["entry 1", f"{KEY_BYTES} bytes", "not 64"]),
        (["k1:"], ["entry 1", "not 0"]),
        ([f"k1:{GOOD}", f"bad id:{OTHER}"], ["entry 2", "expected 'id:base64'"]),
        ([f"k/1:{GOOD}"], ["entry 1", "expected 'id:base64'"]),
        ([f"{'a' * 65}:{GOOD}"], ["entry 1", "expected 'id:base64'"]),
        ([f":{GOOD}"], ["entry 1", "expected 'id:base64'"]),
        ([GOOD], ["entry 1", "expected 'id:base64'"]),
        ([f"k1:{GOOD}", f"k1:{OTHER}"], ["entry 2", "'k1' appears twice"]),
        ([], ["no key"]),
    ],
    ids=[
        "bad-base64",
        "broken-padding",
        "16-byte-key",
        "64-byte-key",
        "empty-key",
        "space-in-id",
        "slash-in-id",
        "id-too-long",
        "missing-id",
        "no-separator",
        "duplicate-id",
        "no-entries",
    ],
)
def test_bad_key_entries_are_refused_without_key_material(
    entries: list[str], fragments: list[str]
) -> None:
    """Malformed key lists raise SecretError saying where and what, never quoting key material."""
    with pytest.raises(SecretError) as caught:
        parse_keys(entries, "SLACK_TOOLS_MASTER_KEYS")
    message = str(caught.value)
    assert message.startswith("SLACK_TOOLS_MASTER_KEYS")
    for fragment in fragments:
        assert fragment in message
    assert_no_secret(message, GOOD, GOOD[:-2], OTHER, SHORT, LONG, "not*base64!")


def test_provider_repr_shows_ids_not_keys() -> None:
    """A provider's repr (as in logs and tracebacks) lists key ids, never key material."""
    key = generate_key()
    provider = parse_keys([f"k1:{key}"], "test keys")
    text = repr(provider)
    assert "k1" in text
    assert_no_secret(text, key, repr(base64.b64decode(key)))


def test_generated_keys_are_fresh_32_byte_keys() -> None:
    """generate_key gives a different valid AES-256 key each call."""
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.b64decode(k, validate=True)) == KEY_BYTES for k in keys)


# --- key files and the provider the configuration asks for ----------------------------------


def test_key_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    """A key file may hold comments and blank lines; keys keep their order, first active."""
    new, old = generate_key(), generate_key()
    path = tmp_path / "master.keys"
    path.write_text(
        f"# slack-tools master keys\n\nnew:{new}\n   # retired next quarter\n\n  old:{old}  \r\n\n",
        encoding="utf-8",
    )
    provider = read_key_file(path)
    assert tuple(provider.key_ids()) == ("new", "old")
    assert provider.key("new") == base64.b64decode(new)
    assert provider.key("old") == base64.b64decode(old)


def test_key_file_errors_name_the_file_and_line_entry(tmp_path: Path) -> None:
    """A bad entry in a key file is reported with the file's path, without the key material."""
    good = generate_key()
    path = tmp_path / "master.keys"
    path.write_text(f"# keys\nk1:{good}\nk2:{SHORT}\n", encoding="utf-8")
    with pytest.raises(SecretError, match=re.escape(f"key file {path}, entry 2")) as caught:
        read_key_file(path)
    assert_no_secret(str(caught.value), good, SHORT)


def test_key_file_with_only_comments_has_no_key(tmp_path: Path) -> None:
    """A key file holding nothing but comments is refused as having no key."""
    path = tmp_path / "master.keys"
    path.write_text("# nothing yet\n\n", encoding="utf-8")
    with pytest.raises(SecretError, match="no key"):
        read_key_file(path)


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "absent.keys"


def _directory(tmp_path: Path) -> Path:
    (tmp_path / "keys.d").mkdir()
    return tmp_path / "keys.d"


def _raw_bytes(tmp_path: Path) -> Path:
    path = tmp_path / "raw.key"
    path.write_bytes(b"\xff\xfe" + bytes(range(30)))
    return path


@pytest.mark.parametrize(
    "make", [_missing, _directory, _raw_bytes], ids=["missing", "directory", "not-utf8"]
)
def test_unreadable_key_file_is_a_secret_error_naming_it(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    """A key file that cannot be read raises SecretError naming the path."""
    path = make(tmp_path)
    with pytest.raises(SecretError, match=re.escape(str(path))):
        read_key_file(path)


def test_provider_from_master_keys_variable() -> None:
    """SLACK_TOOLS_MASTER_KEYS 'new:…, old:…,' gives both keys, the first active."""
    new, old = generate_key(), generate_key()
    provider = build_key_provider(SecretStr(f"new:{new}, old:{old},"), None)
    assert provider is not None
    assert tuple(provider.key_ids()) == ("new", "old")
    assert provider.source == "SLACK_TOOLS_MASTER_KEYS"


def test_master_keys_variable_wins_over_key_file(tmp_path: Path) -> None:
    """When both are set the variable is used and the key file is not read."""
    provider = build_key_provider(SecretStr(f"k1:{generate_key()}"), str(tmp_path / "absent.keys"))
    assert provider is not None
    assert tuple(provider.key_ids()) == ("k1",)


@pytest.mark.parametrize(
    ("master_keys", "key_file"),
    [(None, None), (SecretStr(""), None), (SecretStr("   "), ""), (None, "")],
    ids=["nothing", "empty-variable", "blank-variable", "empty-key-file"],
)
def test_no_provider_without_keys(master_keys: SecretStr | None, key_file: str | None) -> None:
    """Without master keys or a key file there is no provider (encryption is off)."""
    assert build_key_provider(master_keys, key_file) is None


def test_only_commas_in_master_keys_is_refused() -> None:
    """A variable holding only separators is an error, not silently 'no encryption'."""
    with pytest.raises(SecretError, match="SLACK_TOOLS_MASTER_KEYS: no key"):
        build_key_provider(SecretStr(", ,"), None)


# --- re-encryption --------------------------------------------------------------------------


def test_reencrypt_moves_an_old_value_to_the_active_key() -> None:
    """A value under an old key comes back under the active key and decrypts to the same value."""
    old_entry, new_entry = f"old:{generate_key()}", f"new:{generate_key()}"
    old_token = cipher_for(old_entry).encrypt(TOKEN, TENANT_CONTEXT)
    renewed = cipher_for(new_entry, old_entry).reencrypt(old_token, TENANT_CONTEXT)
    assert renewed.startswith("enc:v1:new:")
    assert cipher_for(new_entry).decrypt(renewed, TENANT_CONTEXT) == TOKEN


def test_reencrypt_keeps_a_value_already_under_the_active_key() -> None:
    """A value already under the active key is returned unchanged (no needless rewrite)."""
    new_entry, old_entry = f"new:{generate_key()}", f"old:{generate_key()}"
    cipher = cipher_for(new_entry, old_entry)
    token = cipher.encrypt(TOKEN, TENANT_CONTEXT)
    assert cipher.reencrypt(token, TENANT_CONTEXT) == token


def test_reencrypt_under_the_wrong_context_is_refused() -> None:
    """Rotation never launders a value into another context: a mismatch is a SecretError."""
    old_entry, new_entry = f"old:{generate_key()}", f"new:{generate_key()}"
    token = cipher_for(old_entry).encrypt(TOKEN, TENANT_CONTEXT)
    with pytest.raises(SecretError, match="tenant/globex/slack_bot_token") as caught:
        cipher_for(new_entry, old_entry).reencrypt(token, "tenant/globex/slack_bot_token")
    assert_no_secret(str(caught.value), TOKEN)


# --- tenant data keys (partial isolation) -------------------------------------------------


def _master() -> ValueCipher:
    return ValueCipher(parse_keys([f"k1:{generate_key()}"], "test"))


def test_a_tenant_cipher_reads_its_values_and_the_masters_but_the_master_not_its_own() -> None:
    master = _master()
    key, wrapped = new_data_key(master, "acme")
    tenant = TenantCipher(master, unwrap_data_key(master, "acme", wrapped))
    assert unwrap_data_key(master, "acme", wrapped) == key
    context = "tenant/acme/slack_bot_token"
    mine = tenant.encrypt("xoxb-secret", context)
    before = master.encrypt("xoxb-older", context)

    assert mine.startswith(TENANT_PREFIX)
    assert tenant.decrypt(mine, context) == "xoxb-secret"
    assert tenant.decrypt(before, context) == "xoxb-older"  # written before it was partial
    assert master.reencrypt(mine, context) == mine  # master rotation leaves it alone
    assert tenant.reencrypt(mine, context) == mine
    assert tenant.decrypt(tenant.reencrypt(before, context), context) == "xoxb-older"
    with pytest.raises(SecretError, match="tenant's data key"):
        master.decrypt(mine, context)
    with pytest.raises(SecretError, match="data key"):
        tenant.decrypt(mine, "tenant/acme/other_key")


def test_a_wrapped_data_key_is_bound_to_its_tenant() -> None:
    master = _master()
    _, wrapped = new_data_key(master, "acme")
    with pytest.raises(SecretError):
        unwrap_data_key(master, "globex", wrapped)
