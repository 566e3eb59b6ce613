"""Runtime documents: merge patches, secrets sealed per context, validation, masking and diffs."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from slack_tools.configs.config_loader import Layer
from slack_tools.configs.documents import (
    MASK,
    apply_patch,
    check_document,
    diff,
    global_key_issues,
    mask,
    open_secrets,
    patch_for,
    seal_secrets,
    tenant_base,
    user_base,
)
from slack_tools.configs.provenance import Origin, OriginKind
from slack_tools.configs.schema import AppConfig, TenantConfig
from slack_tools.configs.security import ValueCipher, generate_key, parse_keys
from slack_tools.configs.validator import Issue, Level, validate_app
from slack_tools.errors import ConfigError, SecretError
from slack_tools.storage import DocumentKey, Scope
from tests.helpers import assert_no_secret

TOKEN = "xoxb-1111111111111-2222222222222-AbCdEfGhIjKlMnOpQrStUvWx"
OTHER_TOKEN = "xoxb-3333333333333-4444444444444-ZyXwVuTsRqPoNmLkJiHgFeDc"
ACME = DocumentKey(Scope.TENANT, "acme")
GLOBEX = DocumentKey(Scope.TENANT, "globex")
BOB = DocumentKey(Scope.USER, "acme", "bob")
GLOBAL = DocumentKey(Scope.GLOBAL)


def cipher_for(master_keys: str) -> ValueCipher:
    return ValueCipher(parse_keys(master_keys.split(","), "test keys"))


def read(data: Mapping[str, Any], path: list[str]) -> Any:
    node: Any = data
    for part in path:
        node = node[part]
    return node


# --- merge patch (RFC 7386) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({"x": [1, 2]}, {"x": {"a": "b", "c": None}}, {"x": {"a": "b"}}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ({"a": 1}, {"b": None}, {"a": 1}),
        ({"q": {"x": 1, "y": 2}}, {"q": {"y": 3}}, {"q": {"x": 1, "y": 3}}),
        ({"routes": [1, 2, 3]}, {"routes": [4]}, {"routes": [4]}),
        ({"a": 1}, {"l": [None, {"k": None}]}, {"a": 1, "l": [None, {"k": None}]}),
    ],
    ids=[
        "rfc-replace",
        "rfc-add",
        "rfc-remove-only-key",
        "rfc-remove-one-key",
        "rfc-list-by-scalar",
        "rfc-scalar-by-list",
        "rfc-nested-merge-and-remove",
        "rfc-list-of-objects-replaced",
        "rfc-existing-null-kept",
        "rfc-object-over-list",
        "rfc-nested-nulls-dropped",
        "remove-absent-key",
        "nested-merge-keeps-siblings",
        "lists-replace-whole",
        "nulls-inside-lists-kept",
    ],
)
def test_apply_patch_follows_rfc_7386(
    target: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]
) -> None:
    """apply_patch gives the RFC 7386 result: null removes, mappings merge, the rest replaces."""
    before = copy.deepcopy(target)
    assert apply_patch(target, patch) == expected
    assert target == before


KEYS = st.sampled_from(["a", "b", "c", "quotas", "routes"])
SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=4)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=12,
)
DOCUMENTS = st.dictionaries(KEYS, JSON, max_size=4)
PATH = st.lists(KEYS, min_size=1, max_size=4)
SET_VALUES = st.booleans() | st.integers() | st.text(max_size=6) | st.lists(SCALARS, max_size=3)


def has_null_member(value: Any) -> bool:
    """Whether a mapping anywhere in ``value`` (outside lists) holds a null member."""
    if isinstance(value, Mapping):
        return any(v is None or has_null_member(v) for v in value.values())
    return False


@settings(deadline=None)
@given(document=DOCUMENTS)
def test_empty_patch_is_identity(document: dict[str, Any]) -> None:
    """Applying {} returns an equal document and leaves the input untouched."""
    before = copy.deepcopy(document)
    assert apply_patch(document, {}) == before
    assert document == before


@settings(deadline=None)
@given(document=DOCUMENTS, patch=DOCUMENTS)
def test_patch_is_idempotent_and_applying_empty_after_it_changes_nothing(
    document: dict[str, Any], patch: dict[str, Any]
) -> None:
    """Applying a patch twice equals applying it once, and a following {} is the identity."""
    once = apply_patch(document, patch)
    assert apply_patch(once, patch) == once
    assert apply_patch(once, {}) == once


@settings(deadline=None)
@given(document=DOCUMENTS, patch=DOCUMENTS)
def test_patch_result_member_by_member(document: dict[str, Any], patch: dict[str, Any]) -> None:
    """Unpatched members stay, null members go, mappings merge, anything else is the patch's."""
    before = copy.deepcopy(document)
    result = apply_patch(document, patch)
    assert document == before
    for key, value in before.items():
        if key not in patch:
            assert result[key] == value
    for key, value in patch.items():
        if value is None:
            assert key not in result
        elif isinstance(value, Mapping):
            below = before.get(key)
            assert result[key] == apply_patch(below if isinstance(below, Mapping) else {}, value)
        else:
            assert result[key] == value


@settings(deadline=None)
@given(document=DOCUMENTS, patch=DOCUMENTS)
def test_patch_leaves_no_null_member_unless_target_had_it(
    document: dict[str, Any], patch: dict[str, Any]
) -> None:
    """A null in a patch only ever removes: it never shows up as a member of the result."""
    if not has_null_member(document):
        assert not has_null_member(apply_patch(document, patch))


@settings(deadline=None)
@given(document=DOCUMENTS, path=PATH, value=SET_VALUES)
def test_patch_for_a_key_then_reading_it_gives_the_value(
    document: dict[str, Any], path: list[str], value: Any
) -> None:
    """patch_for(path, value) applied to any document sets exactly that value at that path."""
    result = apply_patch(document, patch_for(".".join(path), value))
    assert read(result, path) == value
    for key, other in document.items():
        if key != path[0]:
            assert result[key] == other


@settings(deadline=None)
@given(document=DOCUMENTS, path=PATH)
def test_patch_for_a_key_with_none_removes_it(document: dict[str, Any], path: list[str]) -> None:
    """patch_for(path, None) removes the key at that path and nothing beside it."""
    result = apply_patch(document, patch_for(".".join(path), None))
    parent: Any = result
    for part in path[:-1]:
        assert isinstance(parent, Mapping)
        parent = parent[part]
    assert path[-1] not in parent
    for key, other in document.items():
        if key != path[0]:
            assert result[key] == other


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("locale", "en_US", {"locale": "en_US"}),
        ("quotas.alerts_per_minute", 10, {"quotas": {"alerts_per_minute": 10}}),
        ("a.b.c", None, {"a": {"b": {"c": None}}}),
        ("slack.default_channel", "#ops", {"slack": {"default_channel": "#ops"}}),
    ],
)
def test_patch_for_builds_the_nested_patch(path: str, value: Any, expected: Any) -> None:
    """A dotted path and a value become the nested merge patch that sets it."""
    assert patch_for(path, value) == expected


@pytest.mark.parametrize("path", ["", ".", ".."])
def test_patch_for_refuses_an_empty_path(path: str) -> None:
    """A key path with no key in it is refused."""
    with pytest.raises(ConfigError, match="is not a key path"):
        patch_for(path, 1)


# --- secrets in documents -----------------------------------------------------------------


def test_seal_encrypts_the_tenant_token_for_its_context(master_keys: str) -> None:
    """A tenant's clear token is encrypted for tenant/<id>/slack_bot_token; the rest stays."""
    cipher = cipher_for(master_keys)
    content = {"slack_bot_token": TOKEN, "slack_channel": "#ops", "quotas": {"x": 5}}
    before = copy.deepcopy(content)
    sealed = seal_secrets(ACME, content, cipher, required=True)
    assert content == before
    assert sealed["slack_bot_token"].startswith("enc:v1:k1:")
    assert cipher.decrypt(sealed["slack_bot_token"], "tenant/acme/slack_bot_token") == TOKEN
    assert {k: v for k, v in sealed.items() if k != "slack_bot_token"} == {
        "slack_channel": "#ops",
        "quotas": {"x": 5},
    }
    assert_no_secret(json.dumps(sealed), TOKEN)


def test_sealed_token_does_not_open_in_another_tenant(master_keys: str) -> None:
    """A sealed token copied into another tenant's document is not decrypted there."""
    cipher = cipher_for(master_keys)
    sealed = seal_secrets(ACME, {"slack_bot_token": TOKEN}, cipher, required=True)
    with pytest.raises(SecretError, match="tenant/globex/slack_bot_token"):
        cipher.decrypt(sealed["slack_bot_token"], "tenant/globex/slack_bot_token")


def test_seal_encrypts_global_secrets_with_their_dotted_path(master_keys: str) -> None:
    """A secret in the global document is bound to global/<dotted path>."""
    cipher = cipher_for(master_keys)
    sealed = seal_secrets(
        GLOBAL, {"slack": {"bot_token": TOKEN, "default_channel": "#ops"}}, cipher, required=True
    )
    assert sealed["slack"]["default_channel"] == "#ops"
    assert cipher.decrypt(sealed["slack"]["bot_token"], "global/slack.bot_token") == TOKEN


def test_seal_leaves_already_encrypted_values(master_keys: str) -> None:
    """A value already in enc: form is stored as given, not encrypted twice."""
    cipher = cipher_for(master_keys)
    token = cipher.encrypt(TOKEN, "tenant/acme/slack_bot_token")
    assert seal_secrets(ACME, {"slack_bot_token": token}, cipher, required=True) == {
        "slack_bot_token": token
    }


def test_seal_leaves_user_documents_alone(master_keys: str) -> None:
    """A user document has no secret keys, so sealing changes nothing."""
    content = {"locale": "en_US", "slack_user_id": "U0123ABCD", "muted_severities": ["info"]}
    assert seal_secrets(BOB, content, cipher_for(master_keys), required=True) == content


def test_seal_refuses_clear_text_when_required_and_no_key() -> None:
    """Without a cipher, a clear secret is refused when encryption is required, naming the key."""
    with pytest.raises(SecretError, match="slack_bot_token: encryption is required") as caught:
        seal_secrets(ACME, {"slack_bot_token": TOKEN}, None, required=True)
    assert_no_secret(str(caught.value), TOKEN)


def test_seal_keeps_clear_text_when_not_required_and_no_key() -> None:
    """Without a cipher and without the requirement (dev), the clear secret is kept as written."""
    content = {"slack_bot_token": TOKEN, "locale": "en_US"}
    assert seal_secrets(ACME, content, None, required=False) == content


def test_open_secrets_decrypts_in_place(master_keys: str) -> None:
    """open_secrets returns the document with its tokens decrypted and no issue."""
    cipher = cipher_for(master_keys)
    content = {"slack_bot_token": TOKEN, "locale": "de_DE"}
    sealed = seal_secrets(ACME, content, cipher, required=True)
    opened, issues = open_secrets(ACME, sealed, cipher)
    assert issues == []
    assert opened == {"slack_bot_token": TOKEN, "locale": "de_DE"}


def test_open_secrets_reports_a_copied_token_without_its_value(master_keys: str) -> None:
    """A token sealed for another tenant is an Issue at its key path, never its clear value."""
    cipher = cipher_for(master_keys)
    copied = seal_secrets(GLOBEX, {"slack_bot_token": OTHER_TOKEN}, cipher, required=True)
    opened, issues = open_secrets(ACME, {**copied, "locale": "en_US"}, cipher)
    assert len(issues) == 1
    issue = issues[0]
    assert issue.level is Level.ERROR
    assert issue.path == ("slack_bot_token",)
    assert "tenant/acme/slack_bot_token" in issue.message
    assert opened["slack_bot_token"] == copied["slack_bot_token"]
    assert opened["locale"] == "en_US"
    assert_no_secret(issue.format() + json.dumps(opened), OTHER_TOKEN, master_keys)


def test_open_secrets_without_a_key_reports_each_encrypted_value(master_keys: str) -> None:
    """With no master key an encrypted value is reported, not passed on as if it were clear."""
    sealed = seal_secrets(ACME, {"slack_bot_token": TOKEN}, cipher_for(master_keys), required=True)
    _, issues = open_secrets(ACME, sealed, None)
    assert [(i.path, i.level) for i in issues] == [(("slack_bot_token",), Level.ERROR)]
    assert "no master key" in issues[0].message


def test_open_secrets_reports_an_unknown_key_id(master_keys: str) -> None:
    """A value under a key the provider lacks is an Issue naming the context and the key id."""
    foreign = ValueCipher(parse_keys([f"gone:{generate_key()}"], "old keys"))
    token = foreign.encrypt(TOKEN, "tenant/acme/slack_bot_token")
    _, issues = open_secrets(ACME, {"slack_bot_token": token}, cipher_for(master_keys))
    assert len(issues) == 1
    assert "tenant/acme/slack_bot_token" in issues[0].message
    assert "'gone'" in issues[0].message
    assert_no_secret(issues[0].message, TOKEN)


# --- validation ---------------------------------------------------------------------------


def test_valid_tenant_document_over_its_base() -> None:
    """A tenant document merges onto tenant_base: its values win, quotas merge key by key."""
    app = AppConfig()
    content = {
        "slack_channel": "#ops",
        "locale": "en_US",
        "timezone": "Europe/Paris",
        "quotas": {"alerts_per_minute": 10},
        "routes": [{"matchers": ['severity="critical"'], "channel": "#oncall"}],
        "slack_bot_token": TOKEN,
    }
    checked = check_document(Scope.TENANT, tenant_base(app), content, {})
    assert checked.ok, [i.format() for i in checked.issues]
    model = checked.model
    assert isinstance(model, TenantConfig)
    assert model.slack_channel == "#ops"
    assert model.locale == "en_US"
    assert model.plan == app.tenants.defaults.plan
    assert dict(model.quotas) == {**app.tenants.defaults.quotas, "alerts_per_minute": 10}
    assert model.routes[0].channel == "#oncall"
    assert model.slack_bot_token is not None
    assert model.slack_bot_token.get_secret_value() == TOKEN


def test_empty_tenant_document_is_its_base() -> None:
    """A tenant that overrides nothing gets the defaults of the application configuration."""
    app = AppConfig()
    checked = check_document(Scope.TENANT, tenant_base(app), {}, {})
    assert checked.ok
    assert isinstance(checked.model, TenantConfig)
    assert checked.model.slack_channel == app.slack.default_channel
    assert checked.model.timezone == app.localization.default_timezone


@pytest.mark.parametrize(
    ("content", "path", "fragment"),
    [
        ({"colour": "red"}, ("colour",), "unknown key"),
        ({"slack_chanel": "#ops"}, ("slack_chanel",), "did you mean 'slack_channel'"),
        ({"locale": "xx_XX"}, ("locale",), "expected one of"),
        ({"timezone": "Mars/Olympus_Mons"}, ("timezone",), "IANA time zone"),
        ({"slack_channel": "alerts"}, ("slack_channel",), "channel name"),
        ({"alert_threshold": "loud"}, ("alert_threshold",), "expected one of"),
        ({"isolation": "total"}, ("isolation",), "'strict'"),
        ({"quotas": {"alerts_per_minute": 0}}, ("quotas", "alerts_per_minute"), "1"),
        (
            {"routes": [{"channel": "#x", "matchers": ["not a matcher"]}]},
            ("routes", 0, "matchers", 0),
            "label matcher",
        ),
        ({"routes": [{"matchers": []}]}, ("routes", 0, "channel"), "required key is missing"),
        ({"routes": [{"channel": "#x", "colour": 1}]}, ("routes", 0, "colour"), "unknown key"),
        ({"slack_bot_token": ["xoxb-leak-me"]}, ("slack_bot_token",), "string"),
    ],
    ids=[
        "unknown-key",
        "typo-with-hint",
        "unsupported-locale",
        "unknown-timezone",
        "channel-without-hash",
        "unknown-threshold",
        "unknown-isolation",
        "zero-quota",
        "bad-route-matcher",
        "route-without-channel",
        "unknown-route-key",
        "token-not-a-string",
    ],
)
def test_invalid_tenant_document_is_an_error_at_the_key_path(
    content: dict[str, Any], path: tuple[str | int, ...], fragment: str
) -> None:
    """Unknown keys and invalid values are errors that name the key path and never the value."""
    checked = check_document(Scope.TENANT, tenant_base(AppConfig()), content, {})
    assert not checked.ok
    assert checked.model is None
    found = [i for i in checked.issues if i.path == path]
    assert found, [i.format() for i in checked.issues]
    assert found[0].level is Level.ERROR
    assert fragment in found[0].message
    assert_no_secret("\n".join(i.format() for i in checked.issues), "xoxb-leak-me")


def test_issue_carries_the_origin_given_for_its_key() -> None:
    """The position supplied for a key is attached to its issue (file:line:col or version)."""
    where = Origin(OriginKind.FILE, "tenant-acme.yaml", 3, 9)
    checked = check_document(
        Scope.TENANT, tenant_base(AppConfig()), {"locale": "xx_XX"}, {("locale",): where}
    )
    assert checked.issues[0].origin == where
    assert checked.issues[0].format().startswith("tenant-acme.yaml:3:9: locale: ")


@pytest.mark.parametrize(
    ("content", "path", "ok"),
    [
        (
            {"locale": "de_DE", "muted_severities": ["info"], "slack_user_id": "U0123ABCD"},
            None,
            True,
        ),
        ({"slack_user_id": "bob"}, ("slack_user_id",), False),
        ({"muted_severities": ["loud"]}, ("muted_severities", 0), False),
        ({"slack_bot_token": TOKEN}, ("slack_bot_token",), False),
    ],
    ids=["valid", "bad-slack-user-id", "unknown-severity", "tenant-key-in-user-document"],
)
def test_user_document_over_its_tenant(
    content: dict[str, Any], path: tuple[str | int, ...] | None, ok: bool
) -> None:
    """A user document is checked over user_base(tenant); errors name the key path."""
    tenant = check_document(Scope.TENANT, tenant_base(AppConfig()), {"locale": "it_IT"}, {}).model
    assert isinstance(tenant, TenantConfig)
    checked = check_document(Scope.USER, user_base(tenant), content, {})
    assert checked.ok is ok
    if path is not None:
        assert path in [i.path for i in checked.issues]
        assert_no_secret("\n".join(i.format() for i in checked.issues), TOKEN)


@pytest.mark.parametrize(
    "content",
    [
        {"slack": {"default_channel": "#ops"}},
        {"monitoring": {"log_level": "DEBUG"}},
        {"localization": {"default_locale": "en_US", "default_timezone": "Asia/Tokyo"}},
        {"tenants": {"defaults": {"quotas": {"alerts_per_minute": 5}, "plan": "gold"}}},
        {"resilience": {"max_attempts": 3}, "cache": {"default_ttl_seconds": 60}},
    ],
    ids=["default-channel", "log-level", "localization", "tenant-defaults", "resilience-cache"],
)
def test_global_document_accepts_runtime_keys(content: dict[str, Any]) -> None:
    """Keys marked runtime-changeable may be set in the global overrides document."""
    assert global_key_issues(content, {}) == []


@pytest.mark.parametrize(
    ("content", "path", "fragment"),
    [
        ({"server": {"port": 9090}}, ("server", "port"), "not changeable at run time"),
        ({"slack": {"bot_token": TOKEN}}, ("slack", "bot_token"), "not changeable at run time"),
        ({"database": {"url": "sqlite://"}}, ("database", "url"), "not changeable at run time"),
        (
            {"security": {"encryption": {"required": False}}},
            ("security", "encryption", "required"),
            "not changeable at run time",
        ),
        ({"slack": {"colour": "red"}}, ("slack", "colour"), "unknown key"),
        ({"nonsense": 1}, ("nonsense",), "unknown key"),
    ],
    ids=["server-port", "bot-token", "database-url", "encryption", "unknown-in-section", "unknown"],
)
def test_global_document_refuses_other_keys(
    content: dict[str, Any], path: tuple[str, ...], fragment: str
) -> None:
    """Keys that are not runtime-changeable or unknown are errors at their key path."""
    where = Origin(OriginKind.DATABASE, "change to global overrides")
    issues = global_key_issues(content, {path: where})
    assert [(i.path, i.level) for i in issues] == [(path, Level.ERROR)]
    assert fragment in issues[0].message
    assert issues[0].origin == where
    assert_no_secret(issues[0].format(), TOKEN)


def resolve_app(layer: Layer) -> tuple[BaseModel | None, list[Issue]]:
    """The whole application configuration: defaults with the global document on top."""
    return validate_app(layer.data, layer.positions, secret_sources={}, has_master_key=True)


def test_check_global_document_with_runtime_key() -> None:
    """check_document accepts slack.default_channel and resolves it into the application config."""
    checked = check_document(
        Scope.GLOBAL, {}, {"slack": {"default_channel": "#ops"}}, {}, resolve_app
    )
    assert checked.ok, [i.format() for i in checked.issues]
    assert isinstance(checked.model, AppConfig)
    assert checked.model.slack.default_channel == "#ops"


def test_check_global_document_refuses_server_port() -> None:
    """check_document refuses server.port in the global document as not changeable at run time."""
    checked = check_document(Scope.GLOBAL, {}, {"server": {"port": 9090}}, {}, resolve_app)
    assert not checked.ok
    assert [i.path for i in checked.issues] == [("server", "port")]
    assert "not changeable at run time" in checked.issues[0].message


def test_check_global_document_reports_invalid_runtime_value() -> None:
    """A runtime key with an invalid value is refused by the application-level validation."""
    checked = check_document(
        Scope.GLOBAL, {}, {"slack": {"default_channel": "ops"}}, {}, resolve_app
    )
    assert not checked.ok
    assert ("slack", "default_channel") in [i.path for i in checked.issues]


# --- masking and diffs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "data", "expected"),
    [
        (
            Scope.TENANT,
            {"slack_bot_token": TOKEN, "slack_channel": "#ops"},
            {"slack_bot_token": MASK, "slack_channel": "#ops"},
        ),
        (
            Scope.TENANT,
            {"slack_bot_token": "enc:v1:k1:AAAA", "plan": "gold"},
            {"slack_bot_token": MASK, "plan": "gold"},
        ),
        (Scope.TENANT, {"slack_bot_token": None}, {"slack_bot_token": None}),
        (
            Scope.GLOBAL,
            {
                "slack": {"bot_token": TOKEN, "signing_secret": OTHER_TOKEN, "mock": False},
                "database": {"password": "pw-1", "url": "sqlite://"},
                "redis": {"password": "pw-2"},
                "security": {"jwt": {"secret": "jwt-secret-3-0123456789abcdef-0123456789"}},
            },
            {
                "slack": {"bot_token": MASK, "signing_secret": MASK, "mock": False},
                "database": {"password": MASK, "url": "sqlite://"},
                "redis": {"password": MASK},
                "security": {"jwt": {"secret": MASK}},
            },
        ),
        (Scope.USER, {"locale": "en_US"}, {"locale": "en_US"}),
    ],
    ids=["tenant-token", "tenant-encrypted-token", "unset-token", "global-secrets", "user"],
)
def test_mask_hides_every_secret(
    scope: Scope, data: dict[str, Any], expected: dict[str, Any]
) -> None:
    """mask replaces each secret value (clear or encrypted) and leaves the rest as it is."""
    masked = mask(scope, data)
    assert masked == expected
    assert_no_secret(json.dumps(masked), TOKEN, OTHER_TOKEN, "pw-1", "pw-2", "adm-3", "AAAA")


def test_diff_lists_added_removed_and_changed_by_dotted_path() -> None:
    """diff reports each leaf that was added, removed or changed, with its dotted path."""
    old = {"locale": "fr_FR", "plan": "standard", "quotas": {"alerts_per_minute": 10, "x": 1}}
    new = {"locale": "en_US", "timezone": "UTC", "quotas": {"alerts_per_minute": 20, "x": 1}}
    changes = diff(Scope.TENANT, old, new)
    assert [(".".join(map(str, c.path)), c.kind, c.old, c.new) for c in changes] == [
        ("locale", "changed", "fr_FR", "en_US"),
        ("plan", "removed", "standard", None),
        ("quotas.alerts_per_minute", "changed", 10, 20),
        ("timezone", "added", None, "UTC"),
    ]
    assert [c.format() for c in changes] == [
        '~ locale: "fr_FR" → "en_US"',
        '- plan: "standard"',
        "~ quotas.alerts_per_minute: 10 → 20",
        '+ timezone: "UTC"',
    ]


def test_diff_of_identical_documents_is_empty() -> None:
    """Two equal documents have no change."""
    content = {"slack_bot_token": TOKEN, "quotas": {"a": 1}}
    assert diff(Scope.TENANT, content, copy.deepcopy(content)) == []


@pytest.mark.parametrize(
    ("scope", "old", "new", "path", "kind"),
    [
        (
            Scope.TENANT,
            {"slack_bot_token": TOKEN},
            {"slack_bot_token": OTHER_TOKEN},
            "slack_bot_token",
            "changed",
        ),
        (Scope.TENANT, {}, {"slack_bot_token": TOKEN}, "slack_bot_token", "added"),
        (Scope.TENANT, {"slack_bot_token": TOKEN}, {}, "slack_bot_token", "removed"),
        (
            Scope.GLOBAL,
            {"slack": {"bot_token": TOKEN}},
            {"slack": {"bot_token": OTHER_TOKEN}},
            "slack.bot_token",
            "changed",
        ),
    ],
    ids=["changed", "added", "removed", "global-changed"],
)
def test_diff_never_shows_a_secret_but_says_it_changed(
    scope: Scope, old: dict[str, Any], new: dict[str, Any], path: str, kind: str
) -> None:
    """A secret's change is reported at its path with masked values, never the values themselves."""
    changes = diff(scope, old, new)
    assert [(".".join(map(str, c.path)), c.kind) for c in changes] == [(path, kind)]
    shown = changes[0].format() + repr(changes)
    assert MASK in shown
    if kind == "changed":
        assert "changed" in changes[0].format()
    assert_no_secret(shown, TOKEN, OTHER_TOKEN)
