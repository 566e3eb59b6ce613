"""Tests of configuration validation: issue format, schema errors, rules per environment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from slack_tools.configs.config_loader import load_config, parse_yaml_layer
from slack_tools.configs.provenance import Origin, OriginKind
from slack_tools.configs.schema import APP_FIELDS, AppConfig
from slack_tools.configs.security import ValueCipher, parse_keys
from slack_tools.configs.validator import (
    ConfigValidationError,
    Issue,
    Level,
    RuleContext,
    SecretSource,
    Stage,
    errors_in,
    rule_issues,
    schema_issues,
    validate_app,
)
from slack_tools.errors import ConfigError
from tests.helpers import assert_no_secret

# --- helpers --------------------------------------------------------------------------------


def write(directory: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``directory/name`` and return the path."""
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def parsed(text: str, source: str = "app.yaml") -> tuple[dict[str, Any], Mapping[Any, Origin]]:
    """The data and positions of a YAML text that has no syntax problem."""
    layer, issues = parse_yaml_layer(text, source, {})
    assert layer is not None
    assert issues == []
    return dict(layer.data), layer.positions


def summary(issues: tuple[Issue, ...] | list[Issue]) -> list[tuple[str, Level, str]]:
    """(dotted path, level, location) of each issue about a key, for compact comparisons."""
    return [
        (".".join(map(str, i.path)), i.level, i.origin.location if i.origin else "")
        for i in issues
        if i.path
    ]


def test_rules_wait_for_the_schema_errors() -> None:
    """With schema errors, a closing note says the environment's rules were not checked yet."""
    with pytest.raises(ConfigValidationError) as caught:
        load_config({"ENVIRONMENT": "production", "SLACK_TOOLS__SERVER__PORT": "70000"})
    notes = [i for i in caught.value.issues if not i.path]
    assert [(n.level, n.stage) for n in notes] == [(Level.WARNING, Stage.RULES)]
    assert "once the errors above are fixed" in notes[0].message


def strict_environ(
    environ: Mapping[str, str], master_keys: str, environment: str
) -> dict[str, str]:
    """A staging or production environment that passes every rule."""
    return {
        **environ,
        "ENVIRONMENT": environment,
        "DATABASE_URL": "postgresql+psycopg://slack@db.internal:5432/slack",
        "SLACK_TOOLS_MASTER_KEYS": master_keys,
    }


# --- Issue and ConfigValidationError --------------------------------------------------------


@pytest.mark.parametrize(
    ("issue", "expected"),
    [
        (
            Issue(
                Level.ERROR,
                Stage.SCHEMA,
                ("server", "port"),
                "too big",
                Origin(OriginKind.FILE, "/etc/app.yaml", 2, 3),
            ),
            "/etc/app.yaml:2:3: server.port: too big",
        ),
        (
            Issue(
                Level.WARNING,
                Stage.SCHEMA,
                ("servr",),
                "unknown key",
                Origin(OriginKind.FILE, "app.yaml", 5, 1),
            ),
            "app.yaml:5:1: servr: unknown key [warning]",
        ),
        (
            Issue(
                Level.ERROR,
                Stage.SYNTAX,
                ("localization", "supported_locales", 1),
                "bad",
                Origin(OriginKind.ENV, "SLACK_TOOLS__LOCALIZATION__SUPPORTED_LOCALES"),
            ),
            "$SLACK_TOOLS__LOCALIZATION__SUPPORTED_LOCALES: localization.supported_locales.1: bad",
        ),
        (
            Issue(
                Level.ERROR, Stage.SYNTAX, (), "invalid YAML", Origin(OriginKind.FILE, "a", 1, 1)
            ),
            "a:1:1: <root>: invalid YAML",
        ),
        (
            Issue(Level.ERROR, Stage.RULES, ("database", "url"), "needed"),
            "<not set>: database.url: needed",
        ),
        (
            Issue(
                Level.ERROR,
                Stage.SCHEMA,
                ("slack", "default_channel"),
                "bad channel",
                Origin(OriginKind.DATABASE, "global v7"),
            ),
            "global v7: slack.default_channel: bad channel",
        ),
    ],
)
def test_issue_format(issue: Issue, expected: str) -> None:
    """An issue reads ``where: key.path: message`` with a warning marker when it is one."""
    assert issue.format() == expected


def test_validation_error_collects_every_issue() -> None:
    """The exception keeps all issues, counts and lists only the errors in its message."""
    error = Issue(Level.ERROR, Stage.SCHEMA, ("a",), "first", Origin(OriginKind.FILE, "f", 1, 1))
    other = Issue(Level.ERROR, Stage.RULES, ("b",), "second", Origin(OriginKind.FILE, "f", 2, 1))
    warning = Issue(
        Level.WARNING, Stage.SCHEMA, ("c",), "third", Origin(OriginKind.FILE, "f", 3, 1)
    )
    exc = ConfigValidationError([error, warning, other])
    assert isinstance(exc, ConfigError)
    assert exc.issues == (error, warning, other)
    text = str(exc)
    assert text.startswith("2 configuration error(s):\n")
    assert "f:1:1: a: first" in text
    assert "f:2:1: b: second" in text
    assert "third" not in text
    assert errors_in(exc.issues) == [error, other]


# --- schema issues --------------------------------------------------------------------------

TYPE_ERRORS = """\
server:
  port: "x"
monitoring:
  log_level: LOUD
localization:
  default_locale: pt_BR
  default_timezone: Mars/Olympus
resilience:
  breaker:
    failure_rate_threshold: 1.5
slack:
  default_channel: Alerts
"""


def test_schema_issues_report_every_error_with_its_position() -> None:
    """Wrong types, out-of-range values and bad choices are each reported at their key."""
    data, positions = parsed(TYPE_ERRORS)
    model, issues = schema_issues(
        AppConfig, data, positions, fields=APP_FIELDS, unknown_keys=Level.ERROR
    )
    assert model is None
    assert sorted(summary(issues)) == sorted(
        [
            ("server.port", Level.ERROR, "app.yaml:2:3"),
            ("monitoring.log_level", Level.ERROR, "app.yaml:4:3"),
            ("localization.default_locale", Level.ERROR, "app.yaml:6:3"),
            ("localization.default_timezone", Level.ERROR, "app.yaml:7:3"),
            ("resilience.breaker.failure_rate_threshold", Level.ERROR, "app.yaml:10:5"),
            ("slack.default_channel", Level.ERROR, "app.yaml:12:3"),
        ]
    )
    assert all(i.stage is Stage.SCHEMA for i in issues)


@pytest.mark.parametrize(
    ("text", "path", "fragments"),
    [
        ("server:\n  port: x\n", ("server", "port"), ("integer", "≤ 65535")),
        ("server:\n  port: 70000\n", ("server", "port"), ("less than or equal to 65535",)),
        ("server:\n  port: 0\n", ("server", "port"), ("greater than or equal to 1",)),
        ("monitoring:\n  log_level: LOUD\n", ("monitoring", "log_level"), ("DEBUG", "ERROR")),
        ("debug: maybe\n", ("debug",), ("boolean",)),
        (
            "localization:\n  default_locale: pt_BR\n",
            ("localization", "default_locale"),
            ("fr_FR",),
        ),
        (
            "tenants:\n  defaults:\n    alert_threshold: loud\n",
            ("tenants", "defaults", "alert_threshold"),
            ("warning_and_above",),
        ),
        (
            "tenants:\n  defaults:\n    quotas:\n      x: 0\n",
            ("tenants", "defaults", "quotas", "x"),
            ("greater than or equal to 1",),
        ),
        (
            "localization:\n  supported_locales: [en_US, xx_XX]\n",
            ("localization", "supported_locales", 1),
            ("expected one of",),
        ),
    ],
)
def test_schema_message_says_what_was_expected(
    text: str, path: tuple[str | int, ...], fragments: tuple[str, ...]
) -> None:
    """Each schema error names the key path and what was expected."""
    data, positions = parsed(text)
    _, issues = schema_issues(
        AppConfig, data, positions, fields=APP_FIELDS, unknown_keys=Level.ERROR
    )
    [issue] = issues
    assert issue.path == path
    for fragment in fragments:
        assert fragment in issue.message


def test_schema_messages_never_quote_the_value() -> None:
    """A wrong value that may be a secret never appears in any schema message."""
    secret = "xoxb-4444-quoted-would-leak"
    text = f"server:\n  port: {secret}\nmonitoring:\n  log_level: {secret}\ndebug: {secret}\n"
    data, positions = parsed(text)
    _, issues = schema_issues(
        AppConfig, data, positions, fields=APP_FIELDS, unknown_keys=Level.ERROR
    )
    assert len(issues) == 3
    for issue in issues:
        assert_no_secret(issue.format(), secret)


@pytest.mark.parametrize(
    ("text", "path", "hint"),
    [
        ("servr:\n  port: 1\n", ("servr",), "server"),
        ("server:\n  prot: 1\n", ("server", "prot"), "port"),
        ("tenants:\n  defaults:\n    quota: {}\n", ("tenants", "defaults", "quota"), "quotas"),
        (
            "security:\n  encryption:\n    requird: true\n",
            ("security", "encryption", "requird"),
            "required",
        ),
        ("slack:\n  bot_tokn: x\n", ("slack", "bot_tokn"), "bot_token"),
        ("zzzzzz: 1\n", ("zzzzzz",), None),
    ],
)
def test_unknown_key_suggests_a_near_miss(
    text: str, path: tuple[str, ...], hint: str | None
) -> None:
    """An unknown key close to a known one gets a "did you mean" hint; a far one gets none."""
    data, positions = parsed(text)
    _, issues = schema_issues(
        AppConfig, data, positions, fields=APP_FIELDS, unknown_keys=Level.WARNING
    )
    [issue] = issues
    assert issue.path == path
    assert issue.message.startswith("unknown key")
    if hint is None:
        assert "did you mean" not in issue.message
    else:
        assert f"did you mean {hint!r}?" in issue.message
    assert issue.origin == positions[path]


def test_unknown_keys_as_warnings_do_not_hide_the_rest() -> None:
    """When unknown keys are only warnings, the rest validates and is kept."""
    data, positions = parsed("servr:\n  port: 1\nserver:\n  port: 9000\n")
    model, issues = schema_issues(
        AppConfig, data, positions, fields=APP_FIELDS, unknown_keys=Level.WARNING
    )
    assert model is not None
    assert model.server.port == 9000
    assert summary(issues) == [("servr", Level.WARNING, "app.yaml:1:1")]


def test_unknown_key_warning_does_not_hide_type_errors() -> None:
    """A typo and a wrong type in the same document are both reported."""
    data, positions = parsed("servr: {}\nserver:\n  port: x\n")
    model, issues = schema_issues(
        AppConfig, data, positions, fields=APP_FIELDS, unknown_keys=Level.WARNING
    )
    assert model is None
    assert sorted(summary(issues)) == [
        ("server.port", Level.ERROR, "app.yaml:3:3"),
        ("servr", Level.WARNING, "app.yaml:1:1"),
    ]


@pytest.mark.parametrize(
    ("environment", "validation", "level"),
    [
        ("dev", None, Level.WARNING),
        ("dev", "permissive", Level.WARNING),
        ("dev", "strict", Level.ERROR),
        ("staging", None, Level.ERROR),
        ("staging", "permissive", Level.ERROR),
        ("production", None, Level.ERROR),
        ("production", "permissive", Level.ERROR),
    ],
)
def test_unknown_key_level_by_environment(
    environment: str, validation: str | None, level: Level
) -> None:
    """Unknown keys are warnings only in dev with permissive validation, errors otherwise."""
    data: dict[str, Any] = {"environment": environment, "servr": {}}
    if validation is not None:
        data["validation"] = validation
    _, issues = validate_app(data, {}, secret_sources={}, has_master_key=True)
    unknown = [i for i in issues if i.path == ("servr",)]
    assert [i.level for i in unknown] == [level]


# --- schema errors through the whole load ---------------------------------------------------

MANY_ERRORS = """\
server:
  port: "x"
servr:
  host: example
monitoring:
  log_level: LOUD
tenants:
  defaults:
    quotas:
      alerts_per_minute: -1
"""


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_load_collects_every_error_at_once(
    tmp_path: Path, environ: dict[str, str], master_keys: str, environment: str
) -> None:
    """One ConfigValidationError holds every error, each at its key's position in the file."""
    path = write(tmp_path, "app.yaml", MANY_ERRORS)
    with pytest.raises(ConfigValidationError) as caught:
        load_config(strict_environ(environ, master_keys, environment), files=[path])
    assert sorted(summary(caught.value.issues)) == sorted(
        [
            ("server.port", Level.ERROR, f"{path}:2:3"),
            ("servr", Level.ERROR, f"{path}:3:1"),
            ("monitoring.log_level", Level.ERROR, f"{path}:6:3"),
            ("tenants.defaults.quotas.alerts_per_minute", Level.ERROR, f"{path}:10:7"),
        ]
    )
    servr = next(i for i in caught.value.issues if i.path == ("servr",))
    assert "did you mean 'server'?" in servr.message
    text = str(caught.value)
    assert text.startswith("4 configuration error(s):")
    assert f"{path}:6:3: monitoring.log_level: " in text


def test_load_collects_errors_across_files_and_variables(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    """A broken file, a wrong value in another file and a bad variable are reported together."""
    broken = write(tmp_path, "a.yaml", "server: [1,\n")
    wrong = write(tmp_path, "b.yaml", "server:\n  port: 70000\n")
    variables = {**environ, "SLACK_TOOLS__LOCALIZATION__SUPPORTED_LOCALES": "[oops"}
    with pytest.raises(ConfigValidationError) as caught:
        load_config(variables, files=[broken, wrong])
    locations = {i.origin.location for i in errors_in(caught.value.issues) if i.origin}
    assert f"{broken}:2:1" in locations
    assert f"{wrong}:2:3" in locations
    assert "$SLACK_TOOLS__LOCALIZATION__SUPPORTED_LOCALES" in locations


def test_dev_load_warns_about_unknown_keys_and_succeeds(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    """In dev an unknown key is a warning with a hint at its position, and the load succeeds."""
    path = write(tmp_path, "app.yaml", "server:\n  port: 9000\nservr:\n  host: example\n")
    loaded = load_config(environ, files=[path])
    assert loaded.config.server.port == 9000
    [warning] = [w for w in loaded.warnings if w.path == ("servr",)]
    assert warning.format() == f"{path}:3:1: servr: unknown key; did you mean 'server'? [warning]"


def test_dev_load_still_fails_on_wrong_types(tmp_path: Path, environ: dict[str, str]) -> None:
    """Permissive dev validation still refuses a wrong type, alongside the unknown-key warning."""
    path = write(tmp_path, "app.yaml", "server:\n  port: x\nservr: {}\n")
    with pytest.raises(ConfigValidationError) as caught:
        load_config(environ, files=[path])
    assert sorted(summary(caught.value.issues))[:2] == [
        ("server.port", Level.ERROR, f"{path}:2:3"),
        ("servr", Level.WARNING, f"{path}:3:1"),
    ]


# --- business rules as a decision table -----------------------------------------------------


def clean_data(environment: str) -> dict[str, Any]:
    """A configuration that breaks no rule in ``environment``."""
    return {
        "environment": environment,
        "data_dir": "/var/lib/slack-tools",
        "database": {"url": "postgresql://slack@db/slack"},
        "security": {"encryption": {"required": True}},
    }


def with_change(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """``data`` with the key at ``dotted`` set to ``value`` (None deletes it)."""
    copy: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    parts = dotted.split(".")
    node = copy
    for part in parts[:-1]:
        node[part] = dict(node.get(part, {}))
        node = node[part]
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return copy


RULES_EVERYWHERE = [
    pytest.param("debug", True, {}, True, ("debug",), id="debug"),
    pytest.param(
        "monitoring.profiling", True, {}, True, ("monitoring", "profiling"), id="profiling"
    ),
    pytest.param("slack.mock", True, {}, True, ("slack", "mock"), id="mock"),
    pytest.param("validation", "permissive", {}, True, ("validation",), id="permissive"),
    pytest.param(
        "security.encryption.required",
        False,
        {},
        True,
        ("security", "encryption", "required"),
        id="encryption-optional",
    ),
    pytest.param(
        "debug", False, {}, False, ("security", "encryption", "key_file"), id="no-master-key"
    ),
    pytest.param(
        "slack.bot_token",
        "xoxb-clear",
        {("slack", "bot_token"): SecretSource.CLEAR_TEXT},
        True,
        ("slack", "bot_token"),
        id="clear-text-secret",
    ),
    pytest.param(
        "database.url",
        "postgresql://u:hunter2@db/x",
        {},
        True,
        ("database", "url"),
        id="password-in-database-url",
    ),
    pytest.param(
        "redis.url",
        "redis://:hunter2@cache:6379/0",
        {},
        True,
        ("redis", "url"),
        id="password-in-redis-url",
    ),
    pytest.param(
        "slack.base_url",
        "http://slack.example/api/",
        {},
        True,
        ("slack", "base_url"),
        id="http-slack",
    ),
    pytest.param(
        "localization.catalogs_directory",
        "/nonexistent/locales",
        {},
        True,
        ("localization", "catalogs_directory"),
        id="missing-catalogs-directory",
    ),
    pytest.param(
        "localization.templates_directory",
        "/nonexistent/templates",
        {},
        True,
        ("localization", "templates_directory"),
        id="missing-templates-directory",
    ),
]


@pytest.mark.parametrize(
    ("environment", "level"),
    [
        ("dev", Level.WARNING),
        ("staging", Level.ERROR),
        ("production", Level.ERROR),
    ],
)
@pytest.mark.parametrize(("key", "value", "sources", "has_key", "path"), RULES_EVERYWHERE)
def test_rule_table(
    environment: str,
    level: Level,
    key: str,
    value: Any,
    sources: dict[tuple[str, ...], SecretSource],
    has_key: bool,
    path: tuple[str, ...],
) -> None:
    """Each rule reports exactly its key: an error outside dev, a warning in dev."""
    config = AppConfig.model_validate(with_change(clean_data(environment), key, value))
    issues = rule_issues(config, RuleContext({}, sources, has_key))
    assert [(i.path, i.level, i.stage) for i in issues] == [(path, level, Stage.RULES)]
    assert_no_secret(issues[0].format(), "hunter2", "xoxb-clear")


@pytest.mark.parametrize("environment", ["dev", "staging", "production"])
def test_clean_configuration_breaks_no_rule(environment: str) -> None:
    """The clean configuration of the table passes every rule in every environment."""
    config = AppConfig.model_validate(clean_data(environment))
    assert rule_issues(config, RuleContext({}, {}, has_master_key=True)) == []


@pytest.mark.parametrize(
    ("source", "is_refused"),
    [
        (SecretSource.CLEAR_TEXT, True),
        (SecretSource.ENVIRONMENT, False),
        (SecretSource.ENCRYPTED, False),
    ],
)
def test_secret_source_decides_the_clear_text_rule(source: SecretSource, is_refused: bool) -> None:
    """Only a secret written in clear text is refused; encrypted or environment ones pass."""
    data = with_change(clean_data("production"), "slack.signing_secret", "s3cr3t")
    config = AppConfig.model_validate(data)
    issues = rule_issues(config, RuleContext({}, {("slack", "signing_secret"): source}, True))
    assert bool(issues) is is_refused


@pytest.mark.parametrize(
    ("url", "is_refused"),
    [
        (None, True),
        ("", True),
        ("sqlite:///:memory:", True),
        ("sqlite://", True),
        ("sqlite:///", True),
        ("sqlite+aiosqlite:///:memory:", True),
        ("sqlite:////var/lib/slack-tools/slack.db", False),
        ("postgresql://slack@db/slack", False),
    ],
)
def test_production_database_url_rule(url: str | None, is_refused: bool) -> None:
    """Production needs an explicit database URL and refuses an in-memory SQLite one."""
    config = AppConfig.model_validate(with_change(clean_data("production"), "database.url", url))
    issues = rule_issues(config, RuleContext({}, {}, has_master_key=True))
    assert [i.path for i in issues] == ([("database", "url")] if is_refused else [])


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (("database.url", None), ("database", "url")),
        (("database.url", "sqlite:///:memory:"), ("database", "url")),
        (("data_dir", None), ("data_dir",)),
    ],
)
@pytest.mark.parametrize(
    ("environment", "is_refused"),
    [
        ("dev", False),
        ("staging", False),
        ("production", True),
    ],
)
def test_production_only_rules(
    change: tuple[str, Any], path: tuple[str, ...], environment: str, is_refused: bool
) -> None:
    """Database URL and data directory requirements apply to production only."""
    config = AppConfig.model_validate(with_change(clean_data(environment), *change))
    issues = rule_issues(config, RuleContext({}, {}, has_master_key=True))
    assert [i.path for i in issues] == ([path] if is_refused else [])


def test_mock_slack_exempts_the_https_rule() -> None:
    """With the Slack fake on, an http base URL is not reported (the mock rule is)."""
    data = with_change(clean_data("dev"), "slack.base_url", "http://127.0.0.1:8080/fake/")
    config = AppConfig.model_validate(with_change(data, "slack.mock", True))
    paths = [i.path for i in rule_issues(config, RuleContext({}, {}, has_master_key=True))]
    assert paths == [("slack", "mock")]


def test_rule_issue_points_at_the_nearest_known_position() -> None:
    """A rule on a key that is not written anywhere points at its closest written ancestor."""
    config = AppConfig.model_validate(clean_data("production"))
    positions: dict[tuple[str | int, ...], Origin] = {
        ("security",): Origin(OriginKind.FILE, "app.yaml", 7, 1)
    }
    [issue] = rule_issues(config, RuleContext(positions, {}, has_master_key=False))
    assert issue.format().startswith("app.yaml:7:1: security.encryption.key_file: no master key")


# --- business rules through the whole load --------------------------------------------------

BOT_SECRET = "xoxb-5555-6666-clear-in-a-file"
PASSWORD = "hunter2-in-the-url"

# (operator file, extra variables, variables removed, key path, message fragment, where)
RULE_CASES = [
    pytest.param("debug: true\n", {}, (), ("debug",), "debug", "app.yaml:1:1", id="debug"),
    pytest.param(
        "monitoring:\n  profiling: true\n",
        {},
        (),
        ("monitoring", "profiling"),
        "profiling",
        "app.yaml:2:3",
        id="profiling",
    ),
    pytest.param(
        "slack:\n  mock: true\n", {}, (), ("slack", "mock"), "fake", "app.yaml:2:3", id="mock"
    ),
    pytest.param(
        "validation: permissive\n",
        {},
        (),
        ("validation",),
        "strict",
        "app.yaml:1:1",
        id="permissive",
    ),
    pytest.param(
        "security:\n  encryption:\n    required: false\n",
        {},
        (),
        ("security", "encryption", "required"),
        "encryption must be required",
        "app.yaml:3:5",
        id="encryption-optional",
    ),
    pytest.param(
        "",
        {},
        ("SLACK_TOOLS_MASTER_KEYS",),
        ("security", "encryption", "key_file"),
        "no master key",
        "<packaged ",
        id="no-master-key",
    ),
    pytest.param(
        f"slack:\n  bot_token: {BOT_SECRET}\n",
        {},
        (),
        ("slack", "bot_token"),
        "clear text",
        "app.yaml:2:3",
        id="clear-bot-token",
    ),
    pytest.param(
        f"slack:\n  signing_secret: {BOT_SECRET}\n",
        {},
        (),
        ("slack", "signing_secret"),
        "clear text",
        "app.yaml:2:3",
        id="clear-signing-secret",
    ),
    pytest.param(
        f"security:\n  jwt:\n    secret: {BOT_SECRET}-0123\n",
        {},
        (),
        ("security", "jwt", "secret"),
        "clear text",
        "app.yaml:3:5",
        id="clear-jwt-secret",
    ),
    pytest.param(
        f"database:\n  password: {BOT_SECRET}\n",
        {},
        (),
        ("database", "password"),
        "clear text",
        "app.yaml:2:3",
        id="clear-database-password",
    ),
    pytest.param(
        "",
        {"DATABASE_URL": f"postgresql://slack:{PASSWORD}@db/slack"},
        (),
        ("database", "url"),
        "password inside the URL",
        "$DATABASE_URL",
        id="password-in-database-url",
    ),
    pytest.param(
        f"redis:\n  url: redis://:{PASSWORD}@cache:6379/0\n",
        {},
        (),
        ("redis", "url"),
        "password inside the URL",
        "app.yaml:2:3",
        id="password-in-redis-url",
    ),
    pytest.param(
        "slack:\n  mock: false\n  base_url: http://slack.example/api/\n",
        {},
        (),
        ("slack", "base_url"),
        "https",
        "app.yaml:3:3",
        id="http-slack",
    ),
]


def rule_environ(
    environ: Mapping[str, str],
    master_keys: str,
    environment: str,
    extra: Mapping[str, str],
    removed: tuple[str, ...],
) -> dict[str, str]:
    base = (
        {**environ, "SLACK_TOOLS_MASTER_KEYS": master_keys}
        if environment == "dev"
        else strict_environ(environ, master_keys, environment)
    )
    return {k: v for k, v in {**base, **extra}.items() if k not in removed}


@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize(("text", "extra", "removed", "path", "fragment", "where"), RULE_CASES)
def test_rules_refuse_outside_dev(
    tmp_path: Path,
    environ: dict[str, str],
    master_keys: str,
    environment: str,
    text: str,
    extra: dict[str, str],
    removed: tuple[str, ...],
    path: tuple[str, ...],
    fragment: str,
    where: str,
) -> None:
    """Staging and production refuse each rule break, at the position that caused it."""
    operator = write(tmp_path, "app.yaml", text)
    variables = rule_environ(environ, master_keys, environment, extra, removed)
    with pytest.raises(ConfigValidationError) as caught:
        load_config(variables, files=[operator])
    errors = errors_in(caught.value.issues)
    assert [i.path for i in errors] == [path], [i.format() for i in errors]
    [issue] = errors
    assert issue.stage is Stage.RULES
    assert fragment in issue.message
    assert where in issue.format()
    assert_no_secret(str(caught.value), BOT_SECRET, PASSWORD)


@pytest.mark.parametrize(("text", "extra", "removed", "path", "fragment", "where"), RULE_CASES)
def test_rules_only_warn_in_dev(
    tmp_path: Path,
    environ: dict[str, str],
    master_keys: str,
    text: str,
    extra: dict[str, str],
    removed: tuple[str, ...],
    path: tuple[str, ...],
    fragment: str,
    where: str,
) -> None:
    """Dev reports the same rule breaks as warnings and loads."""
    operator = write(tmp_path, "app.yaml", text)
    variables = rule_environ(environ, master_keys, "dev", extra, removed)
    loaded = load_config(variables, files=[operator])
    matching = [w for w in loaded.warnings if w.path == path and fragment in w.message]
    assert len(matching) == 1, [w.format() for w in loaded.warnings]
    assert where in matching[0].format()
    assert matching[0].format().endswith(" [warning]")
    for warning in loaded.warnings:
        assert_no_secret(warning.format(), BOT_SECRET, PASSWORD)


PRODUCTION_ONLY_CASES = [
    pytest.param({}, ("DATABASE_URL",), ("database", "url"), "DATABASE_URL", id="no-database-url"),
    pytest.param(
        {"DATABASE_URL": "sqlite:///:memory:"},
        (),
        ("database", "url"),
        "in-memory",
        id="in-memory-sqlite",
    ),
    pytest.param(
        {}, ("SLACK_TOOLS_DATA_DIR",), ("data_dir",), "SLACK_TOOLS_DATA_DIR", id="no-data-dir"
    ),
]


@pytest.mark.parametrize(("extra", "removed", "path", "fragment"), PRODUCTION_ONLY_CASES)
def test_production_storage_requirements(
    tmp_path: Path,
    environ: dict[str, str],
    master_keys: str,
    extra: dict[str, str],
    removed: tuple[str, ...],
    path: tuple[str, ...],
    fragment: str,
) -> None:
    """Production refuses to start without durable storage and an explicit data directory."""
    variables = rule_environ(environ, master_keys, "production", extra, removed)
    with pytest.raises(ConfigValidationError) as caught:
        load_config(variables, files=[])
    [issue] = errors_in(caught.value.issues)
    assert issue.path == path
    assert fragment in issue.message


@pytest.mark.parametrize("environment", ["dev", "staging"])
@pytest.mark.parametrize(("extra", "removed", "path", "fragment"), PRODUCTION_ONLY_CASES)
def test_storage_requirements_are_production_only(
    tmp_path: Path,
    environ: dict[str, str],
    master_keys: str,
    environment: str,
    extra: dict[str, str],
    removed: tuple[str, ...],
    path: tuple[str, ...],
    fragment: str,
) -> None:
    """Dev and staging load without an explicit database URL or data directory."""
    variables = rule_environ(environ, master_keys, environment, extra, removed)
    loaded = load_config(variables, files=[])
    assert not [i for i in loaded.issues if i.path == path and fragment in i.message]


TOKEN = "xoxb-7777-8888-accepted"


@pytest.mark.parametrize(
    ("text", "extra", "encrypted"),
    [
        pytest.param("", {"SLACK_BOT_TOKEN": TOKEN}, False, id="slack-bot-token-variable"),
        pytest.param("", {"SLACK_TOOLS__SLACK__BOT_TOKEN": TOKEN}, False, id="prefixed-variable"),
        pytest.param(
            "slack:\n  bot_token: ${MY_TOKEN}\n", {"MY_TOKEN": TOKEN}, False, id="interpolated"
        ),
        pytest.param(
            "slack:\n  bot_token: ${MY_TOKEN:-unused}\n",
            {"MY_TOKEN": TOKEN},
            False,
            id="interpolated-with-default",
        ),
        pytest.param("slack:\n  bot_token: {encrypted}\n", {}, True, id="encrypted"),
    ],
)
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_secrets_accepted_outside_dev(
    tmp_path: Path,
    environ: dict[str, str],
    master_keys: str,
    environment: str,
    text: str,
    extra: dict[str, str],
    encrypted: bool,
) -> None:
    """A secret from the environment, interpolated, or encrypted for its key path is accepted."""
    if encrypted:
        cipher = ValueCipher(parse_keys([master_keys], "test keys"))
        text = text.format(encrypted=cipher.encrypt(TOKEN, "global/slack.bot_token"))
    operator = write(tmp_path, "app.yaml", text)
    variables = {**strict_environ(environ, master_keys, environment), **extra}
    loaded = load_config(variables, files=[operator])
    assert loaded.issues == ()
    assert loaded.config.slack.bot_token is not None
    assert loaded.config.slack.bot_token.get_secret_value() == TOKEN


def test_clear_secret_in_a_later_file_overrides_an_interpolated_one(
    tmp_path: Path, environ: dict[str, str], master_keys: str
) -> None:
    """The source that wins decides: a clear value over an interpolated one is refused."""
    first = write(tmp_path, "a.yaml", "slack:\n  bot_token: ${MY_TOKEN}\n")
    second = write(tmp_path, "b.yaml", f"slack:\n  bot_token: {BOT_SECRET}\n")
    variables = {**strict_environ(environ, master_keys, "production"), "MY_TOKEN": TOKEN}
    with pytest.raises(ConfigValidationError) as caught:
        load_config(variables, files=[first, second])
    [issue] = errors_in(caught.value.issues)
    assert issue.format().startswith(f"{second}:2:3: slack.bot_token: secret written in clear")
    assert_no_secret(str(caught.value), BOT_SECRET, TOKEN)


def test_dev_allows_everything_the_packaged_file_sets(environ: dict[str, str]) -> None:
    """The packaged dev.yaml loads, reporting its debug-style settings only as warnings."""
    loaded = load_config(environ, files=[])
    assert loaded.config.debug is True
    assert loaded.config.slack.mock is True
    assert errors_in(loaded.issues) == []
    assert {i.path for i in loaded.warnings} >= {("debug",), ("slack", "mock"), ("validation",)}
    assert all(i.stage is Stage.RULES for i in loaded.warnings)


# --- admin tokens outside dev ---------------------------------------------------------------

JWT_SECRET = "jwt-secret-of-the-validator-tests-0123456789"  # nosec B105 - tests only


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_a_shared_jwt_secret_is_refused_outside_dev_unless_allowed(
    environ: dict[str, str], master_keys: str, environment: str
) -> None:
    """HS256 signs as well as verifies: outside dev it needs security.jwt.allow_hs256."""
    variables = {
        **strict_environ(environ, master_keys, environment),
        "SLACK_TOOLS__SECURITY__ADMIN_API": "true",
        "SLACK_TOOLS__SECURITY__JWT__JWKS_URL": "https://idp.example/jwks.json",
        "SLACK_TOOLS__SECURITY__JWT__SECRET": JWT_SECRET,
    }
    with pytest.raises(ConfigValidationError) as caught:
        load_config(variables, files=[])
    [issue] = errors_in(caught.value.issues)
    assert issue.path == ("security", "jwt", "secret")
    assert "HS256" in issue.message
    assert_no_secret(str(caught.value), JWT_SECRET)

    allowed = {**variables, "SLACK_TOOLS__SECURITY__JWT__ALLOW_HS256": "true"}
    assert load_config(allowed, files=[]).config.security.jwt.allow_hs256


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_the_admin_api_outside_dev_needs_a_verification_key(
    tmp_path: Path, environ: dict[str, str], master_keys: str, environment: str
) -> None:
    """With the admin API on and no JWKS nor secret, staging and production refuse to start."""
    variables = {
        **strict_environ(environ, master_keys, environment),
        "SLACK_TOOLS__SECURITY__ADMIN_API": "true",
    }
    with pytest.raises(ConfigValidationError) as caught:
        load_config(variables, files=[])
    [issue] = errors_in(caught.value.issues)
    assert issue.path == ("security", "jwt", "jwks_url")
    assert "nothing verifies" in issue.message

    off = {**variables, "SLACK_TOOLS__SECURITY__ADMIN_API": "false"}
    assert not load_config(off, files=[]).config.security.admin_api
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    with_file = {**variables, "SLACK_TOOLS__SECURITY__JWT__JWKS_FILE": str(jwks)}
    assert load_config(with_file, files=[]).config.security.jwt.jwks_file == str(jwks)


@pytest.mark.parametrize("key", ["JWKS_FILE", "PRIVATE_KEY_FILE"])
def test_jwt_key_files_must_exist(tmp_path: Path, environ: dict[str, str], key: str) -> None:
    """A JWKS or private key file that is not there is reported (a warning in dev)."""
    missing = str(tmp_path / "nowhere.pem")
    loaded = load_config({**environ, f"SLACK_TOOLS__SECURITY__JWT__{key}": missing}, files=[])
    [warning] = [w for w in loaded.warnings if w.path == ("security", "jwt", key.lower())]
    assert f"{missing}: no such file" in warning.message


def test_a_short_jwt_secret_is_refused(environ: dict[str, str]) -> None:
    """An HS256 secret shorter than 32 bytes is a schema error naming the key, not the value."""
    with pytest.raises(ConfigValidationError) as caught:
        load_config({**environ, "SLACK_TOOLS__SECURITY__JWT__SECRET": "short-secret"}, files=[])
    [issue] = errors_in(caught.value.issues)
    assert issue.path == ("security", "jwt", "secret")
    assert "32 bytes" in issue.message
    assert_no_secret(str(caught.value), "short-secret")


def test_roles_naming_unknown_permissions_are_refused(environ: dict[str, str]) -> None:
    """security.roles may only name permissions of the catalogue (or '*')."""
    variables = {**environ, "SLACK_TOOLS__SECURITY__ROLES": '{"auditor": ["audit.raed"]}'}
    with pytest.raises(ConfigValidationError) as caught:
        load_config(variables, files=[])
    [issue] = errors_in(caught.value.issues)
    assert issue.path[:2] == ("security", "roles")
    assert "audit.raed" in issue.message
    good = {**environ, "SLACK_TOOLS__SECURITY__ROLES": '{"auditor": ["audit.read"]}'}
    assert load_config(good, files=[]).config.security.roles["auditor"] == ("audit.read",)
