"""Key rotation end to end: stored document history on SQLite and PostgreSQL, and YAML files."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from slack_tools.configs.documents import open_secrets, seal_secrets
from slack_tools.configs.rotation import rotate_documents, rotate_file
from slack_tools.configs.security import ValueCipher, context_for, generate_key, parse_keys
from slack_tools.errors import ConfigError, SecretError
from slack_tools.storage import DocumentKey, DocumentStore, Scope, create_engine, upgrade
from slack_tools.storage.documents import content_hash
from tests.helpers import assert_no_secret

ACME = DocumentKey(Scope.TENANT, "acme")
GLOBEX = DocumentKey(Scope.TENANT, "globex")
BOB = DocumentKey(Scope.USER, "acme", "bob")
ENC = re.compile(r"enc:v1:[A-Za-z0-9_-]+:[A-Za-z0-9+/=]+")


class Keys:
    """An old key that wrote everything and a new key that rotation makes active."""

    def __init__(self) -> None:
        self.old_entry = f"old:{generate_key()}"
        self.new_entry = f"new:{generate_key()}"
        self.old = ValueCipher(parse_keys([self.old_entry], "old keys"))
        self.rotating = ValueCipher(
            parse_keys(f"{self.new_entry},{self.old_entry}".split(","), "SLACK_TOOLS_MASTER_KEYS")
        )
        self.new_only = ValueCipher(parse_keys([self.new_entry], "new keys"))


@pytest.fixture
def keys() -> Keys:
    """Fresh old and new master keys."""
    return Keys()


@pytest.fixture
def store(database_url: str) -> Iterator[DocumentStore]:
    """A document store on a migrated database of each backend."""
    engine = create_engine(database_url)
    upgrade(engine)
    yield DocumentStore(engine)
    engine.dispose()


# --- stored documents -----------------------------------------------------------------------

HISTORY: list[tuple[DocumentKey, dict[str, Any]]] = [
    (ACME, {"slack_bot_token": "xoxb-acme-1111-aaaaaaaaaaaaaaaaaaaaaa", "slack_channel": "#acme"}),
    (GLOBEX, {"slack_bot_token": "xoxb-globex-2222-bbbbbbbbbbbbbbbbbbbbbbbb", "plan": "gold"}),
    (ACME, {"slack_bot_token": "xoxb-acme-3333-cccccccccccccccccccccc", "slack_channel": "#acme"}),
    (BOB, {"locale": "de_DE", "timezone": "Europe/Berlin"}),
    (
        ACME,
        {
            "slack_bot_token": "xoxb-acme-3333-cccccccccccccccccccccc",
            "slack_channel": "#acme-ops",
            "quotas": {"alerts_per_minute": 10},
        },
    ),
    (GLOBEX, {"plan": "gold", "locale": "es_ES"}),
]
CLEAR_TOKENS = sorted({c["slack_bot_token"] for _, c in HISTORY if "slack_bot_token" in c})


def write_history(store: DocumentStore, cipher: ValueCipher) -> dict[tuple[DocumentKey, int], Any]:
    """Append every version of HISTORY sealed with ``cipher``; returns clear content by version."""
    versions: dict[DocumentKey, int] = {}
    clear: dict[tuple[DocumentKey, int], Any] = {}
    for key, content in HISTORY:
        current = versions.get(key, 0)
        sealed = seal_secrets(key, content, cipher, required=True)
        written = store.append(
            key, sealed, expected_version=current, author="ops", comment=f"v{current + 1}"
        )
        versions[key] = written.version
        clear[(key, written.version)] = content
    return clear


def test_rotation_leaves_every_version_readable_with_only_the_new_key(
    store: DocumentStore, keys: Keys
) -> None:
    """After rotation every stored version, history included, decrypts with the new key alone."""
    clear = write_history(store, keys.old)
    before = {v.change_id: v for v in store.all_versions()}

    versions, values = rotate_documents(store, keys.rotating)

    assert (versions, values) == (4, 4)
    after = store.all_versions()
    assert {v.change_id for v in after} == set(before)
    for version in after:
        old = before[version.change_id]
        assert (version.key, version.version, version.author, version.comment) == (
            old.key,
            old.version,
            old.author,
            old.comment,
        )
        assert version.content_hash == content_hash(version.content)
        opened, issues = open_secrets(version.key, version.content, keys.new_only)
        assert issues == [], [i.format() for i in issues]
        assert opened == clear[(version.key, version.version)]
        token = version.content.get("slack_bot_token")
        if token is not None:
            assert token.startswith("enc:v1:new:")
    stored = json.dumps([v.content for v in after])
    assert "enc:v1:old:" not in stored
    assert_no_secret(stored, *CLEAR_TOKENS)


def test_rotation_keeps_the_current_versions(store: DocumentStore, keys: Keys) -> None:
    """Rotation rewrites how secrets are stored, not which version is current."""
    write_history(store, keys.old)
    rotate_documents(store, keys.rotating)
    acme = store.current(ACME)
    assert acme is not None
    assert acme.version == 3
    opened, issues = open_secrets(ACME, acme.content, keys.new_only)
    assert issues == []
    assert opened["slack_channel"] == "#acme-ops"
    assert [v.version for v in store.history(ACME)] == [3, 2, 1]


def test_rotating_again_changes_nothing(store: DocumentStore, keys: Keys) -> None:
    """A second rotation with the same active key finds nothing to re-encrypt."""
    write_history(store, keys.old)
    rotate_documents(store, keys.rotating)
    first = [dict(v.content) for v in store.all_versions()]
    assert rotate_documents(store, keys.rotating) == (0, 0)
    assert [dict(v.content) for v in store.all_versions()] == first


def test_rotation_refuses_a_token_copied_from_another_tenant(
    store: DocumentStore, keys: Keys
) -> None:
    """A stored token sealed for another tenant stops rotation with an error naming its context."""
    copied = seal_secrets(GLOBEX, {"slack_bot_token": CLEAR_TOKENS[0]}, keys.old, required=True)
    store.append(ACME, copied, expected_version=0, author="ops")
    with pytest.raises(SecretError, match=re.escape("tenant/acme/slack_bot_token")) as caught:
        rotate_documents(store, keys.rotating)
    assert_no_secret(str(caught.value), *CLEAR_TOKENS)


# --- YAML files -----------------------------------------------------------------------------

SECRETS = {
    "slack.signing_secret": "sig-7",
    "database.password": "pw-9f3k",
    "security.jwt.secret": "adm-42",
}
BOT_TOKEN = {"slack.bot_token": "xoxb-1111111111111-2222222222222-AbCdEfGhIjKlMnOpQrStUvWx"}

SHORT_VALUES = """\
# slack-tools: production overrides
# owner: platform team

slack:
  # verifies Slack's callbacks (per-tenant overrides live in the database)
  signing_secret: {slack.signing_secret}  # rotated with the master key
  default_channel: "#alerts"   # quoted: '#' starts a comment
  timeout_seconds: 10

database:
  url: postgresql://db.internal:5432/slack
  password: '{database.password}'
  pool_size: 20

security:
  jwt:
    secret: {security.jwt.secret}
  encryption:
    required: true   # production refuses clear text
"""

INDENTED_LIST = """\
# locales offered to tenants
localization:
  supported_locales:
    - fr_FR
    - en_US
  default_timezone: Europe/Paris
security:
  jwt:
    secret: {security.jwt.secret}
"""

COMMENTS = [
    "# slack-tools: production overrides",
    "# owner: platform team",
    "# verifies Slack's callbacks (per-tenant overrides live in the database)",
    "# rotated with the master key",
    "# quoted: '#' starts a comment",
    "# production refuses clear text",
]

TOKEN_LENGTH_VALUE = """\
slack:
  # a real bot token, encrypted
  bot_token: {slack.bot_token}
  mock: false
"""


def encrypted_file(template: str, cipher: ValueCipher, secrets: dict[str, str]) -> str:
    """``template`` with each ``{dotted.path}`` replaced by that secret encrypted for it."""
    text = template
    for path, value in secrets.items():
        text = text.replace("{" + path + "}", cipher.encrypt(value, context_for(path)))
    return text


def value_at(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


@pytest.mark.parametrize(
    ("template", "secrets"),
    [
        (SHORT_VALUES, SECRETS),
        (INDENTED_LIST, {"security.jwt.secret": "adm-42"}),
        (TOKEN_LENGTH_VALUE, BOT_TOKEN),
    ],
    ids=["comments-short-values", "indented-list", "slack-token-length-value"],
)
def test_rotate_file_changes_nothing_but_the_encrypted_values(
    tmp_path: Path, keys: Keys, template: str, secrets: dict[str, str]
) -> None:
    """Rotation rewrites only the enc: values; comments, quotes and layout stay byte-for-byte."""
    path = tmp_path / "production.yaml"
    original = encrypted_file(template, keys.old, secrets)
    path.write_text(original, encoding="utf-8")

    assert rotate_file(path, keys.rotating) == len(secrets)

    rotated = path.read_text(encoding="utf-8")
    assert ENC.sub("<enc>", rotated) == ENC.sub("<enc>", original)
    assert all(token.startswith("enc:v1:new:") for token in ENC.findall(rotated))


@pytest.mark.parametrize(
    ("template", "secrets"),
    [
        (SHORT_VALUES, SECRETS),
        (INDENTED_LIST, {"security.jwt.secret": "adm-42"}),
        (TOKEN_LENGTH_VALUE, BOT_TOKEN),
    ],
    ids=["comments-short-values", "indented-list", "slack-token-length-value"],
)
def test_rotated_file_values_decrypt_with_their_global_path(
    tmp_path: Path, keys: Keys, template: str, secrets: dict[str, str]
) -> None:
    """Each rotated value decrypts with the new key alone under global/<dotted path>."""
    path = tmp_path / "production.yaml"
    original = encrypted_file(template, keys.old, secrets)
    path.write_text(original, encoding="utf-8")

    rotate_file(path, keys.rotating)

    rotated = path.read_text(encoding="utf-8")
    data = YAML(typ="safe").load(rotated)
    for dotted, clear in secrets.items():
        token = value_at(data, dotted)
        assert token.startswith("enc:v1:new:")
        assert keys.new_only.decrypt(token, f"global/{dotted}") == clear
    masked = YAML(typ="safe").load(ENC.sub("<enc>", rotated))
    assert masked == YAML(typ="safe").load(ENC.sub("<enc>", original))
    assert_no_secret(rotated, *secrets.values())


def test_rotated_file_keeps_every_comment_in_order(tmp_path: Path, keys: Keys) -> None:
    """Every comment of the file is still there, in the same order, after rotation."""
    path = tmp_path / "production.yaml"
    path.write_text(encrypted_file(SHORT_VALUES, keys.old, SECRETS), encoding="utf-8")
    rotate_file(path, keys.rotating)
    rotated = path.read_text(encoding="utf-8")
    places = [rotated.find(comment) for comment in COMMENTS]
    assert -1 not in places, [c for c, at in zip(COMMENTS, places, strict=True) if at == -1]
    assert places == sorted(places)


def test_file_already_under_the_active_key_is_not_rewritten(tmp_path: Path, keys: Keys) -> None:
    """When every value already uses the active key, rotation reports 0 and leaves the bytes."""
    path = tmp_path / "production.yaml"
    original = encrypted_file(SHORT_VALUES, keys.rotating, SECRETS)
    path.write_text(original, encoding="utf-8")
    assert rotate_file(path, keys.rotating) == 0
    assert path.read_text(encoding="utf-8") == original


def test_rotated_file_keeps_its_permissions(tmp_path: Path, keys: Keys) -> None:
    """A file holding secrets keeps its mode (e.g. 0640) after being rewritten."""
    path = tmp_path / "production.yaml"
    path.write_text(encrypted_file(SHORT_VALUES, keys.old, SECRETS), encoding="utf-8")
    path.chmod(0o640)
    rotate_file(path, keys.rotating)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_file_with_an_undecryptable_value_is_left_untouched(tmp_path: Path, keys: Keys) -> None:
    """A value sealed for another key path stops rotation before anything is written."""
    path = tmp_path / "production.yaml"
    misplaced = keys.old.encrypt("adm-42", context_for("slack.bot_token"))
    original = re.sub(
        r"(?m)^    secret: \S+",
        f"    secret: {misplaced}",
        encrypted_file(SHORT_VALUES, keys.old, SECRETS),
    )
    path.write_text(original, encoding="utf-8")
    with pytest.raises(SecretError, match=re.escape("global/security.jwt.secret")) as caught:
        rotate_file(path, keys.rotating)
    assert path.read_text(encoding="utf-8") == original
    assert_no_secret(str(caught.value), *SECRETS.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["production.yaml"]


def test_missing_file_is_a_config_error(tmp_path: Path, keys: Keys) -> None:
    """Rotating a file that does not exist is a ConfigError naming it."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        rotate_file(path, keys.rotating)
