"""Tests of the configuration schema: frozen models, FrozenDict, field specs, merge rules."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Mapping
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr, ValidationError

from slack_tools.configs.schema import (
    APP_FIELDS,
    TENANT_FIELDS,
    USER_FIELDS,
    AppConfig,
    ChannelName,
    FrozenDict,
    IsolationMode,
    LocaleName,
    LocalizationConfig,
    Matcher,
    Port,
    PositiveFloat,
    QuotaLimits,
    Ratio,
    Route,
    ServerConfig,
    Severity,
    SlackConfig,
    TemplateSources,
    TenantConfig,
    TenantDefaults,
    Threshold,
    TimeZoneName,
    UserConfig,
    describe_type,
    merge_rule,
    secret_paths,
)
from tests.helpers import assert_no_secret

PROPERTY = settings(derandomize=True, max_examples=200, deadline=None)

# --- FrozenDict ----------------------------------------------------------------------------


def test_frozen_dict_refuses_item_assignment() -> None:
    """A FrozenDict has no way to set or delete a key."""
    frozen = FrozenDict({"a": 1})
    with pytest.raises(TypeError):
        frozen["a"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        del frozen["a"]  # type: ignore[attr-defined]
    assert not hasattr(frozen, "update")
    assert not hasattr(frozen, "pop")


def test_frozen_dict_copies_its_input() -> None:
    """Mutating the dict a FrozenDict was built from does not change the FrozenDict."""
    source = {"a": 1}
    frozen = FrozenDict(source)
    source["a"] = 2
    source["b"] = 3
    assert dict(frozen) == {"a": 1}


def test_frozen_dict_equals_mappings_with_the_same_items() -> None:
    """A FrozenDict compares equal to any mapping with the same items and unequal otherwise."""
    frozen = FrozenDict({"a": 1, "b": 2})
    assert frozen == {"b": 2, "a": 1}
    assert frozen == FrozenDict({"b": 2, "a": 1})
    assert frozen != {"a": 1}
    assert frozen != [("a", 1), ("b", 2)]


def test_frozen_dict_survives_copy_deepcopy_and_pickle() -> None:
    """Copying, deep-copying and pickling keep a FrozenDict a FrozenDict with the same items."""
    frozen = FrozenDict({"a": 1, "b": 2})
    assert copy.deepcopy(frozen) is frozen
    assert copy.copy(frozen) == frozen
    restored = pickle.loads(pickle.dumps(frozen))  # noqa: S301 - our own bytes
    assert isinstance(restored, FrozenDict)
    assert restored == frozen


def test_frozen_dict_repr_shows_its_items() -> None:
    """The repr names the type and the items, for debugging."""
    assert repr(FrozenDict({"a": 1})) == "FrozenDict({'a': 1})"


@PROPERTY
@given(st.dictionaries(st.text(max_size=8), st.integers(), max_size=8))
def test_frozen_dict_hash_ignores_insertion_order(items: dict[str, int]) -> None:
    """Equal FrozenDicts built in different orders have equal hashes and equal contents."""
    forward = FrozenDict(items)
    backward = FrozenDict(dict(reversed(list(items.items()))))
    assert forward == backward == items
    assert hash(forward) == hash(backward)
    assert len(forward) == len(items)
    assert sorted(forward) == sorted(items)


# --- describe_type --------------------------------------------------------------------------


DESCRIBED_TYPES: list[tuple[Any, str]] = [
    (str, "string"),
    (int, "integer"),
    (float, "number"),
    (bool, "boolean"),
    (str | None, "string or null"),
    (SecretStr | None, "secret or null"),
    (SecretStr, "secret"),
    (Port, "integer"),
    (PositiveFloat, "number"),
    (Ratio, "number"),
    (LocaleName, "locale"),
    (TimeZoneName, "time zone"),
    (Threshold, "threshold"),
    (ChannelName, "channel"),
    (Matcher, "label matcher"),
    (Literal["json", "console"], "one of json, console"),
    (IsolationMode, "one of logical, partial, strict"),
    (Severity, "one of none, info, warning, error, critical"),
    (tuple[LocaleName, ...], "list of locale"),
    (tuple[Severity, ...], "list of one of none, info, warning, error, critical"),
    (QuotaLimits, "mapping of name to integer"),
    (TemplateSources, "mapping of name to string"),
    (Mapping[str, int], "mapping of name to integer"),
    (LocaleName | None, "locale or null"),
    (Threshold | None, "threshold or null"),
]


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [pytest.param(a, e, id=e.replace(" ", "-")) for a, e in DESCRIBED_TYPES],
)
def test_describe_type_names_types_for_readers(annotation: Any, expected: str) -> None:
    """Each annotation used in the schema reads as the documentation's type name."""
    assert describe_type(annotation) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("server", "port"), "integer (≥ 1, ≤ 65535)"),
        (("server", "max_body_bytes"), "integer (≥ 1)"),
        (("resilience", "breaker", "failure_rate_threshold"), "number (> 0, ≤ 1)"),
        (("reload", "debounce_seconds"), "number (≥ 0)"),
        (("slack", "bot_token"), "secret or null"),
        (("slack", "default_channel"), "channel"),
        (("localization", "supported_locales"), "list of locale"),
        (("monitoring", "log_level"), "one of DEBUG, INFO, WARNING, ERROR"),
        (("tenants", "defaults", "quotas"), "mapping of name to integer"),
        (("data_dir",), "string or null"),
    ],
)
def test_field_type_names_include_bounds(path: tuple[str, ...], expected: str) -> None:
    """A field spec's type name carries its numeric bounds as the error messages show them."""
    assert APP_FIELDS[path].type_name == expected


# --- field specs and merge rules ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "path", "expected"),
    [
        (APP_FIELDS, ("server",), "deep"),
        (APP_FIELDS, ("security", "encryption"), "deep"),
        (APP_FIELDS, ("tenants", "defaults"), "deep"),
        (APP_FIELDS, ("tenants", "defaults", "quotas"), "deep"),
        (APP_FIELDS, ("server", "port"), "replace"),
        (APP_FIELDS, ("localization", "supported_locales"), "replace"),
        (APP_FIELDS, ("slack", "bot_token"), "replace"),
        (APP_FIELDS, ("no", "such", "key"), "deep"),
        (TENANT_FIELDS, ("routes",), "replace"),
        (TENANT_FIELDS, ("quotas",), "deep"),
        (TENANT_FIELDS, ("templates",), "deep"),
        (TENANT_FIELDS, ("slack_channel",), "replace"),
        (USER_FIELDS, ("muted_severities",), "replace"),
    ],
)
def test_merge_rule_by_path(
    fields: Mapping[tuple[str, ...], Any], path: tuple[str, ...], expected: str
) -> None:
    """Sections and quota/template mappings merge key by key; leaves and lists are replaced."""
    assert merge_rule(fields, path) == expected


def test_secret_paths_of_the_application() -> None:
    """Exactly the SecretStr keys are secrets, so they are masked and checked everywhere."""
    assert secret_paths(AppConfig) == {
        ("slack", "bot_token"),
        ("slack", "signing_secret"),
        ("redis", "password"),
        ("database", "password"),
        ("security", "jwt", "secret"),
    }
    assert secret_paths(TenantConfig) == {("slack_bot_token",)}
    assert secret_paths(UserConfig) == frozenset()


@pytest.mark.parametrize(
    ("path", "variables"),
    [
        (("environment",), ("ENVIRONMENT",)),
        (("data_dir",), ("SLACK_TOOLS_DATA_DIR",)),
        (("slack", "bot_token"), ("SLACK_BOT_TOKEN",)),
        (("slack", "signing_secret"), ("SLACK_SIGNING_SECRET",)),
        (("redis", "url"), ("REDIS_HOST", "REDIS_PORT")),
        (("database", "url"), ("DATABASE_URL",)),
        (("server", "port"), ()),
    ],
)
def test_field_specs_name_the_specification_variables(
    path: tuple[str, ...], variables: tuple[str, ...]
) -> None:
    """The specification's own environment variables are declared on the keys they set."""
    assert APP_FIELDS[path].env_vars == variables


@pytest.mark.parametrize(
    ("path", "is_runtime"),
    [
        (("slack", "default_channel"), True),
        (("monitoring", "log_level"), True),
        (("tenants", "defaults", "quotas"), True),
        (("resilience", "max_attempts"), True),
        (("server", "port"), False),
        (("slack", "bot_token"), False),
        (("database", "url"), False),
    ],
)
def test_only_marked_keys_are_runtime_changeable(path: tuple[str, ...], is_runtime: bool) -> None:
    """Infrastructure keys are not runtime-changeable; the marked behaviour keys are."""
    assert APP_FIELDS[path].is_runtime is is_runtime


def test_field_specs_list_leaves_not_sections() -> None:
    """Sections are walked, never listed themselves, and defaults are plain values."""
    assert ("server",) not in APP_FIELDS
    assert ("security", "encryption") not in APP_FIELDS
    quotas = APP_FIELDS["tenants", "defaults", "quotas"]
    assert quotas.default == {
        "alerts_per_minute": 6000,
        "messages_per_hour": 3600,
        "admin_calls_per_minute": 600,
    }
    assert type(quotas.default) is dict


# --- models ---------------------------------------------------------------------------------


def test_every_section_is_frozen() -> None:
    """Assigning to an attribute of any part of the configuration raises."""
    config = AppConfig()
    with pytest.raises(ValidationError):
        config.debug = True  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.server.port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.security.encryption.required = True  # type: ignore[misc]


def test_default_quotas_are_read_only() -> None:
    """The quotas mapping of a model cannot be changed in place."""
    quotas = TenantDefaults().quotas
    assert isinstance(quotas, FrozenDict)
    with pytest.raises(TypeError):
        quotas["alerts_per_minute"] = 1  # type: ignore[index]


def test_lists_are_tuples() -> None:
    """List-valued keys are held as tuples, even when given lists."""
    config = LocalizationConfig.model_validate({"supported_locales": ["en_US", "de_DE"]})
    assert config.supported_locales == ("en_US", "de_DE")


def test_mappings_dump_as_plain_dicts() -> None:
    """A frozen mapping serialises to a plain dict in Python and JSON dumps."""
    defaults = TenantDefaults.model_validate({"quotas": {"alerts_per_minute": 5}})
    dumped = defaults.model_dump()
    assert type(dumped["quotas"]) is dict
    assert dumped["quotas"] == {"alerts_per_minute": 5}
    assert '"quotas":{"alerts_per_minute":5}' in defaults.model_dump_json()


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (AppConfig, {"servr": {}}),
        (ServerConfig, {"prot": 1}),
        (SlackConfig, {"token": "x"}),
        (TenantDefaults, {"quota": {}}),
    ],
)
def test_unknown_keys_are_refused(model: type[BaseModel], data: dict[str, Any]) -> None:
    """Every section refuses keys it does not declare."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("model", "key", "value", "is_valid"),
    [
        (ServerConfig, "port", 1, True),
        (ServerConfig, "port", 65535, True),
        (ServerConfig, "port", 0, False),
        (ServerConfig, "port", 65536, False),
        (ServerConfig, "port", "x", False),
        (ServerConfig, "max_body_bytes", 0, False),
        (ServerConfig, "graceful_shutdown_seconds", 0, False),
        (LocalizationConfig, "default_locale", "de_DE", True),
        (LocalizationConfig, "default_locale", "pt_BR", False),
        (LocalizationConfig, "default_timezone", "Europe/Paris", True),
        (LocalizationConfig, "default_timezone", "Mars/Olympus", False),
        (LocalizationConfig, "default_timezone", "../etc/passwd", False),
        (TenantDefaults, "alert_threshold", "all", True),
        (TenantDefaults, "alert_threshold", "warning_and_above", True),
        (TenantDefaults, "alert_threshold", "critical_only", True),
        (TenantDefaults, "alert_threshold", "error", True),
        (TenantDefaults, "alert_threshold", "loud", False),
        (TenantDefaults, "isolation", "logical", True),
        (TenantDefaults, "isolation", "strict", True),
        (TenantDefaults, "isolation", "total", False),
        (TenantDefaults, "quotas", {"alerts_per_minute": 1}, True),
        (TenantDefaults, "quotas", {"alerts_per_minute": 0}, False),
        (SlackConfig, "default_channel", "#alerts", True),
        (SlackConfig, "default_channel", "C0123ABCD", True),
        (SlackConfig, "default_channel", "#Alerts", False),
        (SlackConfig, "default_channel", "alerts", False),
        (SlackConfig, "timeout_seconds", -1, False),
        (Route, "matchers", ['severity="critical"', 'team=~"db|infra"'], True),
        (Route, "matchers", ["team=~(unclosed"], False),
        (Route, "matchers", ["not a matcher"], False),
    ],
)
def test_field_validation(model: type[BaseModel], key: str, value: Any, is_valid: bool) -> None:
    """Each checked type accepts its documented forms and refuses the rest."""
    data: dict[str, Any] = {key: value}
    if model is Route and key != "channel":
        data["channel"] = "#alerts"
    if is_valid:
        model.model_validate(data)
    else:
        with pytest.raises(ValidationError):
            model.model_validate(data)


def test_route_accepts_the_continue_alias() -> None:
    """A route's ``continue`` key (a Python keyword) fills ``continue_``."""
    route = Route.model_validate({"channel": "#db", "continue": True})
    assert route.continue_ is True


def test_validation_errors_never_quote_the_input() -> None:
    """A rejected value, which may be a secret, never appears in pydantic's error text."""
    secret = "xoxb-1234-not-a-port"
    with pytest.raises(ValidationError) as caught:
        ServerConfig.model_validate({"port": secret})
    assert_no_secret(str(caught.value), secret)


def test_secrets_are_masked_in_repr_and_dumps() -> None:
    """SecretStr keys show as stars in repr, str and JSON, never in clear."""
    secret = "xoxb-0000-visible-nowhere"
    config = AppConfig.model_validate({"slack": {"bot_token": secret}})
    assert config.slack.bot_token is not None
    assert config.slack.bot_token.get_secret_value() == secret
    for text in (repr(config), str(config), config.model_dump_json()):
        assert_no_secret(text, secret)


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        (Severity.NONE, Severity.INFO),
        (Severity.INFO, Severity.WARNING),
        (Severity.WARNING, Severity.ERROR),
        (Severity.ERROR, Severity.CRITICAL),
    ],
)
def test_severity_rank_follows_declaration_order(lower: Severity, higher: Severity) -> None:
    """Severities rank lowest first, as DESIGN lists them."""
    assert lower.rank < higher.rank
