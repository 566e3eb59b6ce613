"""ConfigManager and ConfigRuntime on real databases: layers, versions, secrets, explain, caches."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from slack_tools import configs
from slack_tools.configs import (
    ConfigChange,
    ConfigManager,
    ConfigRuntime,
    ConfigValidationError,
    UserConfig,
    initialize_config,
    set_default_runtime,
)
from slack_tools.errors import ConfigError, ConflictError, NotFoundError
from slack_tools.storage import DocumentKey, DocumentVersion, Scope
from tests.helpers import assert_no_secret

MakeRuntime = Callable[..., ConfigRuntime]

GLOBAL_TOKEN = "xoxb-0000000000-global-bot-token-never-shown"
TENANT_TOKEN = "xoxb-1111111111-tenant-bot-token-never-shown"
OTHER_TOKEN = "xoxb-2222222222-second-tenant-token-secret"

ACME = DocumentKey.for_scope("acme")
ALICE = DocumentKey.for_scope("acme", "alice")
GLOBAL = DocumentKey(Scope.GLOBAL)

DEFAULT_QUOTAS = {
    "alerts_per_minute": 6000,
    "messages_per_hour": 3600,
    "admin_calls_per_minute": 600,
}

OPERATOR_YAML = """\
# operator settings
slack:
  default_channel: "#ops"
localization:
  default_locale: de_DE
"""


def stored(manager: ConfigManager, key: DocumentKey) -> DocumentVersion:
    """The document's current version, which the test has written."""
    found = manager.document(key)
    assert found is not None, key
    return found


def user_of(source: ConfigManager | ConfigRuntime, tenant: str, user: str) -> UserConfig:
    """The user's effective preferences, which the test has set."""
    found = source.effective(tenant, user).user
    assert found is not None
    return found


@pytest.fixture
def keyed_environ(master_keys: str) -> dict[str, str]:
    """Variables of a process with a master key and a global bot token."""
    return {"SLACK_TOOLS_MASTER_KEYS": master_keys, "SLACK_BOT_TOKEN": GLOBAL_TOKEN}


@pytest.fixture
def runtime(
    make_runtime: MakeRuntime, database_url: str, keyed_environ: dict[str, str]
) -> ConfigRuntime:
    """A started runtime on each backend, with a master key and no operator file."""
    return make_runtime(database_url=database_url, extra=keyed_environ)


@pytest.fixture
def manager(runtime: ConfigRuntime) -> ConfigManager:
    """A manager over that runtime."""
    return ConfigManager(runtime)


@pytest.fixture
def operator_file(tmp_path: Path) -> Path:
    """An operator file setting the default channel (line 3) and locale (line 5)."""
    path = tmp_path / "operator.yaml"
    path.write_text(OPERATOR_YAML)
    return path


def secrets_of(master_keys: str) -> tuple[str, ...]:
    """Every value that must never be shown: the tokens and the master key material."""
    return (GLOBAL_TOKEN, TENANT_TOKEN, OTHER_TOKEN, master_keys, master_keys.split(":", 1)[1])


# --- the specification's API -------------------------------------------------------------


@pytest.fixture
def default_runtime_reset(database_url: str) -> Iterator[None]:
    """Forget (and close) the default runtime the test made, before its database goes."""
    yield
    made = configs._default
    if made is not None:
        made.database.dispose()
    set_default_runtime(None)


def test_specification_api_uses_the_default_runtime(
    default_runtime_reset: None, environ: dict[str, str], database_url: str
) -> None:
    """initialize_config(environ) then ConfigManager() reads and writes through that runtime."""
    variables = {
        **environ,
        "DATABASE_URL": database_url,
        "REDIS_HOST": "cache.internal",
        "REDIS_PORT": "6380",
    }
    config = initialize_config(variables)

    config_mgr = ConfigManager()
    loaded = config_mgr.load()
    assert loaded is config
    assert loaded.redis.url == "redis://cache.internal:6380/0"
    assert loaded.slack.default_channel == "#alerts"
    assert loaded.monitoring.log_level == "DEBUG"
    assert config_mgr.runtime.database.backend == (
        "sqlite" if "sqlite" in database_url else "postgresql"
    )

    config_mgr.update_tenant_config("tenant_spotify_premium", {"slack_channel": "#premium-alerts"})
    tenant = config_mgr.get_tenant_config("tenant_spotify_premium")
    assert tenant.slack_channel == "#premium-alerts"
    assert tenant.locale == loaded.localization.default_locale
    assert tenant.timezone == loaded.localization.default_timezone == "Europe/Paris"
    assert tenant.alert_threshold == loaded.tenants.defaults.alert_threshold
    assert tenant.plan == "standard"
    assert dict(tenant.quotas) == DEFAULT_QUOTAS
    assert ConfigManager().get_tenant_config("tenant_spotify_premium") == tenant


def test_tenant_without_a_document_has_the_defaults(manager: ConfigManager) -> None:
    """A tenant that never changed anything reads as the defaults, at version 0."""
    effective = manager.effective("fresh")
    assert effective.tenant_version == 0
    assert effective.tenant.slack_channel == manager.config.slack.default_channel
    assert effective.tenant.locale == manager.config.localization.default_locale
    assert manager.document(DocumentKey.for_scope("fresh")) is None


def test_specification_snippet_runs_in_its_order(manager: ConfigManager) -> None:
    """get_tenant_config then update_tenant_config, as the specification writes them."""
    before = manager.get_tenant_config("tenant_spotify_premium")
    manager.update_tenant_config("tenant_spotify_premium", {"slack_channel": "#premium-alerts"})
    after = manager.get_tenant_config("tenant_spotify_premium")
    assert (before.slack_channel, after.slack_channel) == ("#alerts", "#premium-alerts")


# --- the hierarchy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_file", "in_env", "in_global", "in_tenant", "app_expected", "tenant_expected"),
    [
        (False, False, False, False, "#alerts", "#alerts"),
        (True, False, False, False, "#ops", "#ops"),
        (True, True, False, False, "#env", "#env"),
        (True, True, True, False, "#global", "#global"),
        (True, True, True, True, "#global", "#own"),
        (False, False, True, False, "#global", "#global"),
        (False, False, False, True, "#alerts", "#own"),
        (True, False, False, True, "#ops", "#own"),
    ],
)
def test_default_channel_precedence(
    make_runtime: MakeRuntime,
    database_url: str,
    operator_file: Path,
    in_file: bool,
    in_env: bool,
    in_global: bool,
    in_tenant: bool,
    app_expected: str,
    tenant_expected: str,
) -> None:
    """Packaged file ← operator file ← environment ← global overrides ← tenant, highest wins."""
    extra = {"SLACK_TOOLS__SLACK__DEFAULT_CHANNEL": "#env"} if in_env else {}
    runtime = make_runtime(
        files=[operator_file] if in_file else [], extra=extra, database_url=database_url
    )
    manager = ConfigManager(runtime)
    if in_global:
        manager.update_global({"slack": {"default_channel": "#global"}}, author="ops")
    manager.update_tenant_config(
        "acme", {"slack_channel": "#own"} if in_tenant else {"plan": "premium"}, author="ops"
    )
    assert manager.load().slack.default_channel == app_expected
    assert manager.get_tenant_config("acme").slack_channel == tenant_expected


def test_global_default_channel_reaches_only_tenants_without_their_own(
    manager: ConfigManager,
) -> None:
    """A global override of slack.default_channel changes tenants that did not set slack_channel."""
    manager.update_tenant_config("quiet", {"locale": "en_US"}, author="ops")
    manager.update_tenant_config("loud", {"slack_channel": "#loud"}, author="ops")
    assert manager.get_tenant_config("quiet").slack_channel == "#alerts"

    manager.update_global({"slack": {"default_channel": "#everyone"}}, author="ops")

    assert manager.get_tenant_config("quiet").slack_channel == "#everyone"
    assert manager.get_tenant_config("loud").slack_channel == "#loud"
    assert stored(manager, DocumentKey.for_scope("quiet")).content == {"locale": "en_US"}


def test_user_preferences_override_the_tenant(manager: ConfigManager) -> None:
    """A user's locale and timezone override the tenant's; unset ones are the tenant's."""
    manager.update_tenant_config("acme", {"locale": "de_DE", "timezone": "Europe/Berlin"})
    manager.update_user_config("acme", "alice", {"locale": "en_US"})
    manager.update_user_config("acme", "bob", {"locale": "es_ES", "timezone": "America/New_York"})

    alice = manager.get_user_config("acme", "alice")
    bob = manager.get_user_config("acme", "bob")
    nobody = manager.get_user_config("acme", "carol")
    assert (alice.locale, alice.timezone) == ("en_US", "Europe/Berlin")
    assert (bob.locale, bob.timezone) == ("es_ES", "America/New_York")
    assert (nobody.locale, nobody.timezone) == ("de_DE", "Europe/Berlin")
    assert manager.get_tenant_config("acme").locale == "de_DE"

    manager.update_tenant_config("acme", {"timezone": "Asia/Tokyo"})
    assert manager.get_user_config("acme", "alice").timezone == "Asia/Tokyo"
    assert manager.get_user_config("acme", "bob").timezone == "America/New_York"


def test_quotas_merge_key_by_key(manager: ConfigManager) -> None:
    """A tenant sets one quota and keeps the others; a later quota patch keeps the earlier one."""
    manager.update_tenant_config("acme", {"quotas": {"alerts_per_minute": 10}})
    assert dict(manager.get_tenant_config("acme").quotas) == {
        **DEFAULT_QUOTAS,
        "alerts_per_minute": 10,
    }

    manager.update_tenant_config("acme", {"quotas": {"messages_per_day": 5}})

    assert dict(manager.get_tenant_config("acme").quotas) == {
        **DEFAULT_QUOTAS,
        "alerts_per_minute": 10,
        "messages_per_day": 5,
    }
    assert stored(manager, ACME).content["quotas"] == {
        "alerts_per_minute": 10,
        "messages_per_day": 5,
    }


def test_global_quota_override_merges_key_by_key(manager: ConfigManager) -> None:
    """A global override of one default quota keeps the other defaults, for every tenant."""
    manager.update_tenant_config("acme", {"quotas": {"alerts_per_minute": 10}})
    manager.update_global({"tenants": {"defaults": {"quotas": {"messages_per_hour": 100}}}})

    assert dict(manager.load().tenants.defaults.quotas) == {
        **DEFAULT_QUOTAS,
        "messages_per_hour": 100,
    }
    assert dict(manager.get_tenant_config("acme").quotas) == {
        **DEFAULT_QUOTAS,
        "alerts_per_minute": 10,
        "messages_per_hour": 100,
    }


def test_set_value_sets_and_removes_one_dotted_key(manager: ConfigManager) -> None:
    """set_value writes one key of a nested mapping; None removes the override again."""
    manager.update_tenant_config("acme", {"slack_channel": "#acme"})
    manager.set_value(ACME, "quotas.alerts_per_minute", 7)
    assert manager.get_tenant_config("acme").quotas["alerts_per_minute"] == 7

    manager.set_value(ACME, "quotas.alerts_per_minute", None)
    assert manager.get_tenant_config("acme").quotas["alerts_per_minute"] == 6000
    assert [v.version for v in manager.history(ACME)] == [3, 2, 1]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"monitoring": {"log_level": "WARNING"}}, ("monitoring", "log_level", "WARNING")),
        ({"resilience": {"max_attempts": 3}}, ("resilience", "max_attempts", 3)),
        ({"cache": {"default_ttl_seconds": 12.5}}, ("cache", "default_ttl_seconds", 12.5)),
        (
            {"localization": {"default_locale": "it_IT"}},
            ("localization", "default_locale", "it_IT"),
        ),
    ],
)
def test_global_document_accepts_runtime_keys(
    manager: ConfigManager, patch: dict[str, Any], expected: tuple[str, str, Any]
) -> None:
    """Runtime-changeable keys written to the global document change the live configuration."""
    section, key, value = expected
    version = manager.update_global(patch, author="ops")
    assert version.version == 1
    assert getattr(getattr(manager.load(), section), key) == value


# --- versioning --------------------------------------------------------------------------


def test_history_keeps_every_version_with_author_and_comment(manager: ConfigManager) -> None:
    """Each change is a new version with its author and comment; history lists newest first."""
    manager.update_tenant_config("acme", {"slack_channel": "#a"}, author="alice", comment="one")
    manager.update_tenant_config("acme", {"slack_channel": "#b"}, author="bob", comment="two")
    manager.update_tenant_config("acme", {"plan": "premium"}, author="carol", comment="three")

    history = manager.history(ACME)
    assert [(v.version, v.author, v.comment, v.action) for v in history] == [
        (3, "carol", "three", "update"),
        (2, "bob", "two", "update"),
        (1, "alice", "one", "update"),
    ]
    assert history[0].content == {"slack_channel": "#b", "plan": "premium"}
    assert history[2].content == {"slack_channel": "#a"}


@pytest.fixture
def three_versions(manager: ConfigManager) -> ConfigManager:
    """acme at three versions: v1 channel+locale, v2 new channel+quota, v3 locale gone+plan."""
    manager.update_tenant_config("acme", {"slack_channel": "#a", "locale": "fr_FR"})
    manager.update_tenant_config(
        "acme", {"slack_channel": "#b", "quotas": {"alerts_per_minute": 5}}
    )
    manager.update_tenant_config("acme", {"locale": None, "plan": "premium"})
    return manager


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (0, 1, {("locale",): ("added", None, "fr_FR"), ("slack_channel",): ("added", None, "#a")}),
        (
            1,
            2,
            {
                ("slack_channel",): ("changed", "#a", "#b"),
                ("quotas", "alerts_per_minute"): ("added", None, 5),
            },
        ),
        (
            1,
            3,
            {
                ("slack_channel",): ("changed", "#a", "#b"),
                ("quotas", "alerts_per_minute"): ("added", None, 5),
                ("locale",): ("removed", "fr_FR", None),
                ("plan",): ("added", None, "premium"),
            },
        ),
        (
            3,
            1,
            {
                ("slack_channel",): ("changed", "#b", "#a"),
                ("quotas", "alerts_per_minute"): ("removed", 5, None),
                ("locale",): ("added", None, "fr_FR"),
                ("plan",): ("removed", "premium", None),
            },
        ),
        (2, 2, {}),
    ],
)
def test_diff_between_any_two_versions(
    three_versions: ConfigManager,
    old: int,
    new: int,
    expected: dict[tuple[str, ...], tuple[str, Any, Any]],
) -> None:
    """diff lists what was added, removed and changed from one version to another."""
    changes = three_versions.diff(ACME, old, new)
    assert {c.path: (c.kind, c.old, c.new) for c in changes} == expected


@pytest.mark.parametrize(("old", "new"), [(1, 9), (9, 1), (4, 3)])
def test_diff_with_an_unknown_version_is_not_found(
    three_versions: ConfigManager, old: int, new: int
) -> None:
    """A diff naming a version that does not exist raises NotFoundError."""
    with pytest.raises(NotFoundError, match="has no version"):
        three_versions.diff(ACME, old, new)


def test_rollback_is_a_new_version_with_the_old_content(three_versions: ConfigManager) -> None:
    """Rolling back to v1 appends v4 equal to v1, marked rollback and based on 1."""
    manager = three_versions
    restored = manager.rollback(ACME, 1, author="ops")

    assert restored.version == 4
    assert restored.action == "rollback"
    assert restored.based_on == 1
    assert restored.author == "ops"
    assert "rollback to version 1" in restored.comment
    assert restored.content == manager.history(ACME)[-1].content
    assert [v.version for v in manager.history(ACME)] == [4, 3, 2, 1]
    assert manager.history(ACME)[1].content == {
        "slack_channel": "#b",
        "quotas": {"alerts_per_minute": 5},
        "plan": "premium",
    }
    tenant = manager.get_tenant_config("acme")
    assert (tenant.slack_channel, tenant.locale, tenant.plan) == ("#a", "fr_FR", "standard")
    assert manager.diff(ACME, 1, 4) == []


def test_rollback_of_an_encrypted_version_restores_the_secret(manager: ConfigManager) -> None:
    """A rolled-back version holding an encrypted token still decrypts to the same token."""
    manager.update_tenant_config("acme", {"slack_bot_token": TENANT_TOKEN})
    manager.update_tenant_config("acme", {"slack_bot_token": OTHER_TOKEN})
    manager.rollback(ACME, 1, author="ops")
    token = manager.get_tenant_config("acme").slack_bot_token
    assert token is not None
    assert token.get_secret_value() == TENANT_TOKEN


@pytest.mark.parametrize("version", [0, 4, 99])
def test_rollback_to_an_unknown_version_is_not_found(
    three_versions: ConfigManager, version: int
) -> None:
    """Rolling back to a version that does not exist raises NotFoundError and writes nothing."""
    with pytest.raises(NotFoundError):
        three_versions.rollback(ACME, version)
    assert len(three_versions.history(ACME)) == 3


def test_rollback_based_on_a_stale_version_conflicts(three_versions: ConfigManager) -> None:
    """A rollback that names a version other than the current one raises ConflictError."""
    with pytest.raises(ConflictError):
        three_versions.rollback(ACME, 1, expected_version=2)
    assert len(three_versions.history(ACME)) == 3


@pytest.mark.parametrize(
    ("patch", "path", "message"),
    [
        ({"bogus": 1}, ("bogus",), "unknown key"),
        ({"slack_chanel": "#x"}, ("slack_chanel",), "did you mean 'slack_channel'"),
        ({"locale": "xx_XX"}, ("locale",), "expected one of"),
        ({"slack_channel": "alerts"}, ("slack_channel",), "channel"),
        ({"timezone": "Mars/Olympus"}, ("timezone",), "IANA time zone"),
        ({"quotas": {"alerts_per_minute": 0}}, ("quotas", "alerts_per_minute"), ""),
        ({"alert_threshold": "loud"}, ("alert_threshold",), "expected one of"),
        ({"isolation": "total"}, ("isolation",), ""),
        (
            {"routes": [{"matchers": ['severity="critical"']}]},
            ("routes", 0, "channel"),
            "required key is missing",
        ),
    ],
)
def test_invalid_tenant_patch_is_refused_with_the_key_path(
    manager: ConfigManager, patch: dict[str, Any], path: tuple[Any, ...], message: str
) -> None:
    """An invalid change raises ConfigValidationError naming the key path and stores nothing."""
    manager.update_tenant_config("acme", {"slack_channel": "#acme"})
    before = manager.history(ACME)
    cached = manager.get_tenant_config("acme")

    with pytest.raises(ConfigValidationError) as caught:
        manager.update_tenant_config("acme", patch)

    issue = next(i for i in caught.value.issues if i.path == path)
    assert message in issue.message
    dotted = ".".join(str(p) for p in path)
    assert re.search(rf"tenant acme: {re.escape(dotted)}: ", str(caught.value))
    assert manager.history(ACME) == before
    assert manager.get_tenant_config("acme") == cached


def test_invalid_first_version_creates_no_document(manager: ConfigManager) -> None:
    """A refused change to a new tenant leaves no document behind."""
    with pytest.raises(ConfigValidationError):
        manager.update_tenant_config("acme", {"slack_channel": "#ok", "locale": "klingon"})
    assert manager.document(ACME) is None
    assert manager.history(ACME) == []


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"slack_user_id": "nobody"}, ("slack_user_id",)),
        ({"muted_severities": ["loud"]}, ("muted_severities", 0)),
        ({"slack_channel": "#mine"}, ("slack_channel",)),
        ({"timezone": "Nowhere/Land"}, ("timezone",)),
    ],
)
def test_invalid_user_patch_is_refused(
    manager: ConfigManager, patch: dict[str, Any], path: tuple[Any, ...]
) -> None:
    """User documents are validated too: bad values and tenant-only keys are refused."""
    manager.update_tenant_config("acme", {"slack_channel": "#acme"})
    with pytest.raises(ConfigValidationError) as caught:
        manager.update_user_config("acme", "alice", patch)
    assert path in [i.path for i in caught.value.issues]
    assert manager.document(ALICE) is None


@pytest.mark.parametrize(
    ("patch", "path", "message"),
    [
        ({"server": {"port": 9000}}, ("server", "port"), "not changeable at run time"),
        ({"database": {"url": "sqlite://"}}, ("database", "url"), "not changeable at run time"),
        (
            {"slack": {"bot_token": "xoxb-9999-global-written-at-runtime"}},
            ("slack", "bot_token"),
            "not changeable at run time",
        ),
        (
            {"security": {"encryption": {"required": True}}},
            ("security", "encryption", "required"),
            "not changeable at run time",
        ),
        ({"slack": {"nope": 1}}, ("slack", "nope"), "unknown key"),
        (
            {"localization": {"default_locale": "xx_XX"}},
            ("localization", "default_locale"),
            "expected one of",
        ),
    ],
)
def test_global_document_refuses_keys_not_changeable_at_runtime(
    manager: ConfigManager, patch: dict[str, Any], path: tuple[str, ...], message: str
) -> None:
    """The global overrides document takes only runtime-changeable keys with valid values."""
    config = manager.load()
    with pytest.raises(ConfigValidationError) as caught:
        manager.update_global(patch, author="ops")

    issue = next(i for i in caught.value.issues if i.path == path)
    assert message in issue.message
    assert ".".join(path) in str(caught.value)
    assert_no_secret(str(caught.value), "xoxb-9999-global-written-at-runtime")
    assert manager.document(GLOBAL) is None
    assert manager.load() is config


def test_stale_expected_version_conflicts(manager: ConfigManager) -> None:
    """A write based on an old version raises ConflictError; one based on the current succeeds."""
    first = manager.update_tenant_config("acme", {"slack_channel": "#a"}, expected_version=0)
    manager.update_tenant_config("acme", {"slack_channel": "#b"}, expected_version=first.version)

    with pytest.raises(ConflictError, match="version 2"):
        manager.update_tenant_config("acme", {"slack_channel": "#c"}, expected_version=1)
    with pytest.raises(ConflictError):
        manager.update_tenant_config("acme", {"slack_channel": "#c"}, expected_version=0)

    assert len(manager.history(ACME)) == 2
    assert manager.get_tenant_config("acme").slack_channel == "#b"
    third = manager.update_tenant_config("acme", {"slack_channel": "#c"}, expected_version=2)
    assert third.version == 3


@pytest.mark.parametrize(
    "patch",
    [
        {},
        {"slack_channel": "#acme"},
        {"quotas": {"alerts_per_minute": 10}},
        {"locale": None},
        {"slack_bot_token": TENANT_TOKEN},
    ],
    ids=["empty", "same-channel", "same-quota", "remove-absent", "same-secret"],
)
def test_no_op_write_creates_no_version(manager: ConfigManager, patch: dict[str, Any]) -> None:
    """A change that leaves the document as it is returns the current version and stores none."""
    current = manager.update_tenant_config(
        "acme",
        {
            "slack_channel": "#acme",
            "quotas": {"alerts_per_minute": 10},
            "slack_bot_token": TENANT_TOKEN,
        },
    )
    returned = manager.update_tenant_config("acme", patch)
    assert returned.version == current.version
    assert [v.version for v in manager.history(ACME)] == [1]


# --- secrets -----------------------------------------------------------------------------


def test_tenant_token_is_stored_encrypted_and_shown_masked(
    manager: ConfigManager, master_keys: str
) -> None:
    """A token given in clear is stored as enc:v1 and masked by show, explain, diff and history."""
    with capture_logs() as logs:
        manager.update_tenant_config(
            "acme", {"slack_channel": "#acme", "slack_bot_token": TENANT_TOKEN}
        )
        manager.update_tenant_config("acme", {"slack_bot_token": OTHER_TOKEN})
    assert_no_secret(repr(logs), *secrets_of(master_keys))

    stored = manager.document(ACME)
    assert stored is not None
    assert re.fullmatch(r"enc:v1:k1:[A-Za-z0-9+/=]+", stored.content["slack_bot_token"])
    raw_history = json.dumps([dict(v.content) for v in manager.history(ACME)])
    assert_no_secret(raw_history, *secrets_of(master_keys))

    token = manager.get_tenant_config("acme").slack_bot_token
    assert token is not None
    assert token.get_secret_value() == OTHER_TOKEN

    shown = manager.show(ACME)
    assert shown["slack_bot_token"] == "********"
    explained = manager.explain("slack_bot_token", tenant_id="acme")
    assert explained.is_secret
    assert explained.value == "********"
    # The schema's default (no token) and the tenant's own, masked.
    assert [(e.layer, e.value) for e in explained.entries] == [
        ("schema", None),
        (explained.entries[-1].layer, "********"),
    ]
    added = manager.diff(ACME, 0, 1)
    changed = manager.diff(ACME, 1, 2)
    assert {c.path: c.new for c in added}[("slack_bot_token",)] == "********"
    assert [c.kind for c in changed if c.path == ("slack_bot_token",)] == ["changed"]

    shown_text = " ".join(
        [
            json.dumps(shown),
            repr(explained),
            repr(added),
            repr(changed),
            *(c.format() for c in [*added, *changed]),
            repr(manager.get_tenant_config("acme")),
            repr(manager.effective("acme")),
            repr(manager.history(ACME)),
        ]
    )
    assert_no_secret(shown_text, *secrets_of(master_keys))
    assert "enc:v1" not in " ".join(c.format() for c in [*added, *changed])


def test_global_token_from_environment_is_masked(manager: ConfigManager, master_keys: str) -> None:
    """The global bot token from SLACK_BOT_TOKEN is explained by variable name, value masked."""
    explained = manager.explain("slack.bot_token")
    assert explained.is_secret
    assert explained.value == "********"
    assert explained.entries[-1].origin == "environment variable SLACK_BOT_TOKEN"
    assert_no_secret(repr(explained) + json.dumps(manager.show(GLOBAL)), *secrets_of(master_keys))


def test_encrypted_token_copied_to_another_tenant_is_refused(
    manager: ConfigManager, master_keys: str
) -> None:
    """A ciphertext bound to one tenant does not decrypt in another tenant's document."""
    manager.update_tenant_config("acme", {"slack_bot_token": TENANT_TOKEN})
    sealed = stored(manager, ACME).content["slack_bot_token"]
    with pytest.raises(ConfigValidationError) as caught:
        manager.update_tenant_config("globex", {"slack_bot_token": sealed})
    assert "slack_bot_token" in str(caught.value)
    assert_no_secret(str(caught.value), *secrets_of(master_keys))
    assert manager.document(DocumentKey.for_scope("globex")) is None


def test_token_is_refused_when_encryption_is_required_without_a_key(
    make_runtime: MakeRuntime, database_url: str, tmp_path: Path
) -> None:
    """With security.encryption.required and no master key, a tenant token cannot be written."""
    required = tmp_path / "required.yaml"
    required.write_text("security:\n  encryption:\n    required: true\n")
    runtime = make_runtime(files=[required], database_url=database_url)
    manager = ConfigManager(runtime)
    assert manager.load().security.encryption.required is True

    with pytest.raises(ConfigError, match="encryption is required") as caught:
        manager.update_tenant_config(
            "acme", {"slack_channel": "#acme", "slack_bot_token": TENANT_TOKEN}
        )
    assert "slack_bot_token" in str(caught.value)
    assert_no_secret(str(caught.value), TENANT_TOKEN)
    assert manager.document(ACME) is None

    manager.update_tenant_config("acme", {"slack_channel": "#acme"})
    assert manager.get_tenant_config("acme").slack_bot_token is None


# --- explain -----------------------------------------------------------------------------

PACKAGED = re.compile(r"<packaged dev\.yaml>:\d+:\d+")


@pytest.fixture
def layered(
    make_runtime: MakeRuntime, database_url: str, operator_file: Path, keyed_environ: dict[str, str]
) -> ConfigManager:
    """Every layer sets something: packaged, operator file, a variable, the global document,
    a tenant and a user."""
    runtime = make_runtime(
        files=[operator_file],
        database_url=database_url,
        extra={**keyed_environ, "SLACK_TOOLS__SLACK__DEFAULT_CHANNEL": "#env"},
    )
    manager = ConfigManager(runtime)
    manager.update_global({"slack": {"default_channel": "#global"}}, author="bob")
    manager.update_tenant_config(
        "acme", {"slack_channel": "#tenant", "locale": "es_ES"}, author="alice"
    )
    manager.update_user_config("acme", "carol", {"locale": "it_IT"}, author="carol")
    return manager


def test_explain_app_key_lists_every_layer_lowest_first(
    layered: ConfigManager, operator_file: Path
) -> None:
    """explain names the schema default, the packaged and operator lines, the variable and the
    global version with its author, in that order."""
    explained = layered.explain("slack.default_channel")
    assert explained.value == "#global"
    assert not explained.is_secret
    entries = explained.entries
    assert [e.value for e in entries] == ["#alerts", "#alerts", "#ops", "#env", "#global"]
    assert entries[0].origin == "schema default"
    assert PACKAGED.fullmatch(entries[1].origin)
    assert entries[2].origin == f"{operator_file}:3:3"
    assert entries[3].origin == "environment variable SLACK_TOOLS__SLACK__DEFAULT_CHANNEL"
    assert entries[4].origin.startswith("global overrides, version 1 by bob at ")
    assert {e.key for e in entries} == {"slack.default_channel"}


def test_explain_tenant_key_adds_the_tenant_version(
    layered: ConfigManager, operator_file: Path
) -> None:
    """explain with a tenant shows where the default came from, then the tenant's own version."""
    explained = layered.explain("slack_channel", tenant_id="acme")
    assert explained.value == "#tenant"
    assert [e.value for e in explained.entries] == [
        "#alerts",
        "#alerts",
        "#ops",
        "#env",
        "#global",
        "#tenant",
    ]
    assert explained.entries[2].origin == f"{operator_file}:3:3"
    last = explained.entries[-1]
    assert (last.layer, last.key) == ("tenant acme", "slack_channel")
    assert last.origin.startswith("tenant acme, version 1 by alice at ")


def test_explain_user_key_adds_tenant_and_user_versions(
    layered: ConfigManager, operator_file: Path
) -> None:
    """explain with a user goes from the locale default through the tenant to the user."""
    explained = layered.explain("locale", tenant_id="acme", user_id="carol")
    assert explained.value == "it_IT"
    entries = explained.entries
    assert [e.value for e in entries] == ["fr_FR", "fr_FR", "de_DE", "es_ES", "it_IT"]
    assert entries[0].origin == "schema default"
    assert PACKAGED.fullmatch(entries[1].origin)
    assert entries[2].origin == f"{operator_file}:5:3"
    assert entries[3].origin.startswith("tenant acme, version 1 by alice at ")
    assert entries[4].origin.startswith("user carol of tenant acme, version 1 by carol at ")


def test_explain_user_key_without_user_document_stops_at_the_tenant(
    layered: ConfigManager,
) -> None:
    """A user with no document of their own inherits, and explain says from whom."""
    explained = layered.explain("locale", tenant_id="acme", user_id="dave")
    assert explained.value == "es_ES"
    assert explained.entries[-1].layer == "tenant acme"


@pytest.mark.parametrize(
    ("key", "tenant_id", "user_id"),
    [
        ("no.such.key", None, None),
        ("slack.nope", None, None),
        ("slack_channel", None, None),
        ("muted_severities", "acme", None),
        ("nickname", "acme", "carol"),
    ],
)
def test_explain_unknown_key_is_not_found(
    layered: ConfigManager, key: str, tenant_id: str | None, user_id: str | None
) -> None:
    """A key unknown at the level asked raises NotFoundError."""
    with pytest.raises(NotFoundError, match="unknown key"):
        layered.explain(key, tenant_id=tenant_id, user_id=user_id)


# --- the effective cache -----------------------------------------------------------------


def test_effective_is_cached_until_a_change(manager: ConfigManager) -> None:
    """effective() returns the same object until the tenant (or the global document) changes."""
    manager.update_tenant_config("acme", {"slack_channel": "#one"})
    manager.update_tenant_config("globex", {"slack_channel": "#globex"})
    first = manager.effective("acme")
    globex = manager.effective("globex")
    assert manager.effective("acme") is first

    manager.update_tenant_config("acme", {"slack_channel": "#two"})
    second = manager.effective("acme")
    assert second is not first
    assert second.tenant.slack_channel == "#two"
    assert second.tenant_version == 2
    assert manager.effective("globex") is globex

    manager.update_global({"localization": {"default_timezone": "Asia/Tokyo"}})
    third = manager.effective("acme")
    assert third is not second
    assert third.tenant.timezone == "Asia/Tokyo"
    assert manager.effective("globex") is not globex


def test_user_view_is_refreshed_by_tenant_and_user_changes(manager: ConfigManager) -> None:
    """A cached user view is dropped when the user's or the tenant's document changes."""
    manager.update_tenant_config("acme", {"locale": "de_DE"})
    view = manager.effective("acme", "alice")
    assert view.user is not None
    assert view.user.locale == "de_DE"
    assert manager.effective("acme", "alice") is view

    manager.update_user_config("acme", "alice", {"timezone": "Asia/Tokyo"})
    assert user_of(manager, "acme", "alice").timezone == "Asia/Tokyo"

    manager.update_tenant_config("acme", {"locale": "en_US"})
    assert user_of(manager, "acme", "alice").locale == "en_US"


def test_readers_holding_an_old_view_keep_the_old_values(manager: ConfigManager) -> None:
    """A view taken before a change keeps its values and cannot be modified."""
    manager.update_tenant_config(
        "acme", {"slack_channel": "#before", "quotas": {"alerts_per_minute": 1}}
    )
    held = manager.effective("acme")
    held_app = manager.load()

    manager.update_tenant_config(
        "acme", {"slack_channel": "#after", "quotas": {"alerts_per_minute": 2}}
    )
    manager.update_global({"slack": {"default_channel": "#new-default"}})

    assert held.tenant.slack_channel == "#before"
    assert held.tenant.quotas["alerts_per_minute"] == 1
    assert held_app.slack.default_channel == "#alerts"
    assert manager.load().slack.default_channel == "#new-default"
    assert manager.effective("acme").tenant.slack_channel == "#after"
    with pytest.raises(ValidationError):
        held.tenant.slack_channel = "#mutated"  # type: ignore[misc]
    with pytest.raises(TypeError):
        held.tenant.quotas["alerts_per_minute"] = 99  # type: ignore[index]
    with pytest.raises(ValidationError):
        held_app.slack.default_channel = "#mutated"  # type: ignore[misc]
    assert held.tenant.slack_channel == "#before"


def test_local_write_notifies_subscribers(manager: ConfigManager) -> None:
    """A write through the manager tells on_change subscribers which document changed."""
    seen: list[ConfigChange] = []
    unsubscribe = manager.on_change(seen.append)
    manager.update_tenant_config("acme", {"slack_channel": "#acme"})
    manager.update_global({"monitoring": {"log_level": "ERROR"}})
    unsubscribe()
    manager.update_tenant_config("acme", {"slack_channel": "#quiet"})

    assert [(c.trigger, c.documents) for c in seen] == [("write", (ACME,)), ("write", (GLOBAL,))]
    assert seen[1].previous.monitoring.log_level == "DEBUG"
    assert seen[1].current.monitoring.log_level == "ERROR"


# --- several instances on one database ----------------------------------------------------


@pytest.fixture
def two_instances(
    make_runtime: MakeRuntime, database_url: str, keyed_environ: dict[str, str]
) -> tuple[ConfigRuntime, ConfigRuntime]:
    """Two runtimes sharing one database, as two service instances would."""
    return (
        make_runtime(database_url=database_url, extra=keyed_environ),
        make_runtime(database_url=database_url, extra=keyed_environ),
    )


def test_write_in_one_instance_reaches_the_other_after_refresh(
    two_instances: tuple[ConfigRuntime, ConfigRuntime],
) -> None:
    """A tenant write through A is seen by B after refresh_from_database, and B's subscribers
    are told which document changed."""
    a, b = two_instances
    writer, reader = ConfigManager(a), ConfigManager(b)
    writer.update_tenant_config("acme", {"slack_channel": "#one"})
    assert b.refresh_from_database() == (ACME,)
    cached = reader.effective("acme")
    assert cached.tenant.slack_channel == "#one"
    seen: list[ConfigChange] = []
    b.on_change(seen.append)

    writer.update_tenant_config("acme", {"slack_channel": "#two", "slack_bot_token": TENANT_TOKEN})
    assert reader.effective("acme") is cached

    assert b.refresh_from_database() == (ACME,)
    assert [(c.trigger, c.documents) for c in seen] == [("database", (ACME,))]
    view = reader.effective("acme")
    assert view.tenant.slack_channel == "#two"
    assert view.tenant.slack_bot_token is not None
    assert view.tenant.slack_bot_token.get_secret_value() == TENANT_TOKEN

    assert b.refresh_from_database() == ()
    assert len(seen) == 1


def test_global_write_in_one_instance_swaps_the_others_config(
    two_instances: tuple[ConfigRuntime, ConfigRuntime],
) -> None:
    """A global override written through A replaces B's configuration on refresh."""
    a, b = two_instances
    old = b.config
    seen: list[ConfigChange] = []
    b.on_change(seen.append)

    ConfigManager(a).update_global({"slack": {"default_channel": "#shared"}}, author="ops")
    assert b.config.slack.default_channel == "#alerts"

    assert b.refresh_from_database() == (GLOBAL,)
    assert b.config.slack.default_channel == "#shared"
    assert old.slack.default_channel == "#alerts"
    assert b.status.outcome == "applied"
    assert b.status.trigger == "database"
    assert len(seen) == 1
    assert seen[0].documents == (GLOBAL,)
    assert seen[0].previous is old
    assert seen[0].current is b.config


def test_user_write_in_one_instance_reaches_the_others_user_view(
    two_instances: tuple[ConfigRuntime, ConfigRuntime],
) -> None:
    """A user document written through A refreshes B's cached view of that user."""
    a, b = two_instances
    ConfigManager(a).update_tenant_config("acme", {"locale": "de_DE"})
    b.refresh_from_database()
    assert user_of(b, "acme", "alice").locale == "de_DE"

    ConfigManager(a).update_user_config("acme", "alice", {"locale": "en_US"})
    assert b.refresh_from_database() == (ALICE,)
    assert user_of(b, "acme", "alice").locale == "en_US"


def test_write_by_another_instance_is_seen_even_after_a_local_write(
    two_instances: tuple[ConfigRuntime, ConfigRuntime],
) -> None:
    """A's own write after B's does not hide B's write from A's next refresh."""
    a, b = two_instances
    mine, theirs = ConfigManager(a), ConfigManager(b)
    mine.update_tenant_config("acme", {"slack_channel": "#one"})
    assert mine.effective("acme").tenant.slack_channel == "#one"

    theirs.update_tenant_config("acme", {"slack_channel": "#two"})
    mine.update_tenant_config("globex", {"slack_channel": "#globex"})
    a.refresh_from_database()

    assert mine.effective("acme").tenant.slack_channel == "#two"


def test_explaining_a_key_only_users_have_starts_from_its_schema_default(
    manager: ConfigManager,
) -> None:
    """muted_severities is set by no layer below the user: the schema's default is its origin."""
    unset = manager.explain("muted_severities", tenant_id="acme", user_id="alice")
    assert [(e.layer, e.value) for e in unset.entries] == [("schema", [])]
    manager.update_user_config("acme", "alice", {"muted_severities": ["info"]})
    muted = manager.explain("muted_severities", tenant_id="acme", user_id="alice")
    assert [e.value for e in muted.entries] == [[], ["info"]]
    assert muted.value == ["info"]
