"""Tests of the configuration loader: YAML with positions, interpolation, environment, layering."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from slack_tools.configs.config_loader import (
    Layer,
    LoadedConfig,
    environment_layer,
    expand_paths,
    load_config,
    load_sources,
    merge,
    merge_positions,
    parse_yaml_layer,
    read_environment,
    read_yaml_layer,
    resolve,
)
from slack_tools.configs.provenance import Origin, OriginKind
from slack_tools.configs.schema import EnvName, FieldSpec
from slack_tools.configs.security import ValueCipher, generate_key, parse_keys
from slack_tools.configs.validator import ConfigValidationError, Issue, Level
from tests.helpers import assert_no_secret

PROPERTY = settings(derandomize=True, max_examples=200, deadline=None)

# --- helpers --------------------------------------------------------------------------------


def write(directory: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``directory/name`` and return the path."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_errors(environ: Mapping[str, str], files: list[Path] | None) -> tuple[Issue, ...]:
    """The issues of a load that must fail."""
    with pytest.raises(ConfigValidationError) as caught:
        load_config(environ, files=files)
    return caught.value.issues


def issues_at(issues: tuple[Issue, ...] | list[Issue], *path: str | int) -> list[Issue]:
    return [issue for issue in issues if issue.path == path]


def production_environ(environ: Mapping[str, str], master_keys: str) -> dict[str, str]:
    """Everything production needs from the environment, with a bot token."""
    return {
        **environ,
        "ENVIRONMENT": "production",
        "DATABASE_URL": "postgresql+psycopg://slack@db.internal:5432/slack",
        "SLACK_TOOLS_MASTER_KEYS": master_keys,
        "SLACK_BOT_TOKEN": "xoxb-from-the-environment",
    }


def cipher_for(master_keys: str) -> ValueCipher:
    return ValueCipher(parse_keys([master_keys], "test keys"))


def leaves(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every (path, value) of ``data`` whose value is not a mapping."""
    for key, value in data.items():
        if isinstance(value, Mapping):
            yield from leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def lookup(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = data
    for part in path:
        node = node[part]
    return node


# --- read_environment -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, EnvName.DEV),
        ("dev", EnvName.DEV),
        ("development", EnvName.DEV),
        ("staging", EnvName.STAGING),
        ("production", EnvName.PRODUCTION),
        ("prod", EnvName.PRODUCTION),
        (" PROD ", EnvName.PRODUCTION),
        ("Staging", EnvName.STAGING),
    ],
)
def test_read_environment_picks_the_environment(value: str | None, expected: EnvName) -> None:
    """ENVIRONMENT picks dev (default), staging or production, aliases and case included."""
    variables = {} if value is None else {"ENVIRONMENT": value}
    read = read_environment(variables)
    assert read.environment is expected
    assert read.issues == ()


def test_read_environment_reports_an_unknown_environment() -> None:
    """An ENVIRONMENT outside the three names is an error naming the variable."""
    read = read_environment({"ENVIRONMENT": "qa"})
    [issue] = read.issues
    assert issue.level is Level.ERROR
    assert issue.path == ("environment",)
    assert issue.format().startswith("$ENVIRONMENT: environment: ")


def test_read_environment_argument_overrides_the_variable() -> None:
    """The explicit ``environment`` argument (config validate --env) wins over ENVIRONMENT."""
    assert read_environment({"ENVIRONMENT": "dev"}, environment="prod").environment is (
        EnvName.PRODUCTION
    )


def test_read_environment_splits_the_config_path_list() -> None:
    """SLACK_TOOLS_CONFIG is a ':'-separated list; empty entries are skipped."""
    read = read_environment({"SLACK_TOOLS_CONFIG": "/etc/a.yaml::/etc/conf.d: "})
    assert read.config_paths == (Path("/etc/a.yaml"), Path("/etc/conf.d"))


def test_read_environment_keeps_master_keys_secret(master_keys: str) -> None:
    """The master keys are held as a SecretStr and never shown in the repr."""
    read = read_environment({"SLACK_TOOLS_MASTER_KEYS": master_keys})
    assert isinstance(read.master_keys, SecretStr)
    assert read.master_keys.get_secret_value() == master_keys
    assert_no_secret(repr(read), master_keys.partition(":")[2])


def test_read_environment_copies_the_variables() -> None:
    """Later changes to the caller's mapping do not reach the read environment."""
    variables = {"ENVIRONMENT": "staging"}
    read = read_environment(variables)
    variables["ENVIRONMENT"] = "production"
    assert read.variables["ENVIRONMENT"] == "staging"


# --- YAML syntax ----------------------------------------------------------------------------

SECRET = "xoxb-9999-LEAKED-IF-QUOTED"


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        pytest.param(
            f"server:\n  port: 8080\nslack:\n  bot_token: [{SECRET}, other\n  mock: true\n",
            5,
            7,
            "expected ',' or ']'",
            id="unclosed-flow-sequence",
        ),
        pytest.param(
            f"slack:\n  mock: true\n bot_token: {SECRET}\n",
            3,
            2,
            "expected <block end>",
            id="bad-indentation",
        ),
        pytest.param(
            f"slack:\n\tbot_token: {SECRET}\n",
            2,
            1,
            "'\\t'",
            id="tab",
        ),
        pytest.param(
            f"server:\n  port: 1\nslack:\n  bot_token: '{SECRET}\n",
            5,
            1,
            "end of stream",
            id="unclosed-quote",
        ),
        pytest.param(
            f"slack:\n  bot_token: x\n  bot_token: {SECRET}\n",
            3,
            3,
            "duplicate key 'bot_token'",
            id="duplicate-key",
        ),
        pytest.param(
            f"database:\n  password: *{SECRET}\n",
            2,
            13,
            "undefined alias",
            id="undefined-alias",
        ),
    ],
)
def test_syntax_error_names_file_line_column_without_quoting(
    text: str, line: int, column: int, fragment: str
) -> None:
    """A YAML syntax error is one issue at file:line:col that never quotes the bad line."""
    layer, issues = parse_yaml_layer(text, "/etc/slack-tools/app.yaml", {})
    assert layer is None
    [issue] = issues
    assert issue.level is Level.ERROR
    assert issue.origin is not None
    assert (issue.origin.source, issue.origin.line, issue.origin.column) == (
        "/etc/slack-tools/app.yaml",
        line,
        column,
    )
    formatted = issue.format()
    assert formatted.startswith(f"/etc/slack-tools/app.yaml:{line}:{column}: ")
    assert fragment in formatted
    assert_no_secret(formatted, SECRET, SECRET[5:])


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"- a\n- {SECRET}\n", id="sequence"),
        pytest.param(f"{SECRET}\n", id="scalar"),
        pytest.param("42\n", id="number"),
    ],
)
def test_top_level_must_be_a_mapping(text: str) -> None:
    """A document that is not a mapping is one error at line 1, column 1."""
    layer, issues = parse_yaml_layer(text, "app.yaml", {})
    assert layer is None
    [issue] = issues
    assert issue.format() == "app.yaml:1:1: <root>: the document must be a mapping of keys"
    assert_no_secret(issue.format(), SECRET)


@pytest.mark.parametrize(
    ("text", "path", "line", "column"),
    [
        pytest.param(f"server:\n  port: 1\n8080: {SECRET}\n", (), 3, 1, id="integer-key"),
        pytest.param(f"slack:\n  true: {SECRET}\n", ("slack",), 2, 3, id="boolean-key"),
        pytest.param(f"server:\n  null: {SECRET}\n", ("server",), 2, 3, id="null-key"),
    ],
)
def test_non_string_keys_are_reported_where_they_are(
    text: str, path: tuple[str, ...], line: int, column: int
) -> None:
    """A key that is not a string is an error at its own line and column; the rest still loads."""
    layer, issues = parse_yaml_layer(text, "app.yaml", {})
    [issue] = issues
    assert issue.path == path
    assert issue.message == "keys must be strings"
    assert issue.origin is not None
    assert (issue.origin.line, issue.origin.column) == (line, column)
    assert_no_secret(issue.format(), SECRET)
    assert layer is not None


def test_empty_document_is_an_empty_layer() -> None:
    """An empty or comment-only file contributes nothing and reports nothing."""
    layer, issues = parse_yaml_layer("# nothing here\n", "empty.yaml", {})
    assert issues == []
    assert layer is not None
    assert dict(layer.data) == {}


def test_positions_are_one_based_for_keys_and_list_items() -> None:
    """Every key and list item gets the 1-based line and column editors show."""
    text = "server:\n  port: 8080\nlocalization:\n  supported_locales:\n    - en_US\n    - fr_FR\n"
    layer, issues = parse_yaml_layer(text, "app.yaml", {})
    assert issues == []
    assert layer is not None
    where = {path: (o.line, o.column) for path, o in layer.positions.items()}
    assert where[("server",)] == (1, 1)
    assert where[("server", "port")] == (2, 3)
    assert where[("localization", "supported_locales")] == (4, 3)
    assert where[("localization", "supported_locales", 0)] == (5, 7)
    assert where[("localization", "supported_locales", 1)] == (6, 7)
    assert all(
        o.kind is OriginKind.FILE and o.source == "app.yaml" for o in layer.positions.values()
    )


def test_scalars_become_plain_python_values() -> None:
    """ruamel's scalar types become plain bool/int/float/str; dates become ISO strings."""
    text = "a: true\nb: 0x10\nc: 1.5\nd: 2024-05-01\ne: null\nf: '8080'\n"
    layer, _ = parse_yaml_layer(text, "app.yaml", {})
    assert layer is not None
    values = dict(layer.data)
    assert values == {"a": True, "b": 16, "c": 1.5, "d": "2024-05-01", "e": None, "f": "8080"}
    assert [type(values[k]) for k in "abcf"] == [bool, int, float, str]


def test_unsupported_tagged_values_are_issues() -> None:
    """A custom-tagged or binary value is an error at its key, never an exception."""
    layer, issues = parse_yaml_layer("a: !!binary aGVsbG8=\nb: !vault abc\n", "app.yaml", {})
    assert layer is not None
    assert [(i.path, i.origin.line if i.origin else 0) for i in issues] == [
        (("a",), 1),
        (("b",), 2),
    ]
    assert all("unsupported YAML value" in i.message for i in issues)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("base: &base {port: 1}\nserver:\n  <<: *base\n  host: h\n", id="merge-key"),
        pytest.param("server:\n  host: 2024-13-45\n", id="impossible-date"),
        pytest.param("server: !!omap [port: 1]\n", id="omap"),
        pytest.param("%YAML 1.3\n---\nserver: {}\n", id="yaml-1.3-directive"),
        pytest.param("a: " + "[" * 1500, id="deep-nesting"),
    ],
)
def test_parse_yaml_layer_turns_odd_documents_into_issues(text: str) -> None:
    """Valid-looking but unusual YAML yields a layer or issues, never an exception."""
    layer, issues = parse_yaml_layer(text, "odd.yaml", {})
    assert layer is not None or issues


# A YAML-flavoured alphabet reaches far more of the parser than arbitrary text does.
YAML_PIECES = st.sampled_from(
    [
        "a",
        "b",
        "key",
        ":",
        ": ",
        " ",
        "  ",
        "\t",
        "\n",
        "-",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "#",
        "'",
        '"',
        "&x",
        "*x",
        "!",
        "!!str",
        "|",
        ">",
        "?",
        "---",
        "...",
        "%",
        "@",
        "`",
        "${A}",
        "${B:-d}",
        "$$",
        "${",
        "1",
        "1.5",
        "true",
        "null",
        "~",
        "\\",
        "\r",
        "\x00",
        "é",
        "\ufeff",
    ]
)


@PROPERTY
@given(st.one_of(st.text(max_size=200), st.lists(YAML_PIECES, max_size=60).map("".join)))
def test_parse_yaml_layer_never_raises(text: str) -> None:
    """Any text gives a layer or issues with a 1-based position, never an exception."""
    layer, issues = parse_yaml_layer(text, "fuzz.yaml", {"A": "value"})
    assert layer is not None or issues
    for issue in issues:
        assert issue.origin is not None
        assert issue.origin.source == "fuzz.yaml"
        assert issue.origin.line >= 1
        assert issue.origin.column >= 1


def test_read_yaml_layer_reports_unreadable_files(tmp_path: Path) -> None:
    """A missing file or one that is not UTF-8 is an issue naming the file, not an exception."""
    missing = tmp_path / "missing.yaml"
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"server:\n  host: \xff\xfe\n")
    for path, fragment in ((missing, "cannot read"), (binary, "not valid UTF-8")):
        layer, issues = read_yaml_layer(path, {})
        assert layer is None
        [issue] = issues
        assert issue.format().startswith(f"{path}:1:1: ")
        assert fragment in issue.message


def test_read_yaml_layer_uses_the_label_in_messages(tmp_path: Path) -> None:
    """A label replaces the file name in positions (as for the packaged files)."""
    path = write(tmp_path, "x.yaml", "server:\n  port: 1\n")
    layer, _ = read_yaml_layer(path, {}, label="<packaged x.yaml>")
    assert layer is not None
    assert layer.positions["server", "port"].location == "<packaged x.yaml>:2:3"


def test_syntax_error_fails_the_load_with_its_position(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    """A broken operator file fails the whole load, naming the file, line and column."""
    broken = write(tmp_path, "broken.yaml", f"server:\n  port: 1\n\tbot_token: {SECRET}\n")
    with pytest.raises(ConfigValidationError) as caught:
        load_config(environ, files=[broken])
    assert f"{broken}:3:1: <root>: " in str(caught.value)
    assert_no_secret(str(caught.value), SECRET)


# --- interpolation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "variables", "expected"),
    [
        ("${HOST}", {"HOST": "db.internal"}, "db.internal"),
        ("${HOST:-localhost}", {"HOST": "db.internal"}, "db.internal"),
        ("${HOST:-localhost}", {}, "localhost"),
        ("${HOST:-localhost}", {"HOST": ""}, "localhost"),
        ("${HOST:-}", {}, ""),
        ("${HOST}", {"HOST": ""}, ""),
        ("http://${HOST}:${PORT:-80}/x", {"HOST": "h"}, "http://h:80/x"),
        ("price $$5", {}, "price $5"),
        ("$${HOST}", {"HOST": "h"}, "${HOST}"),
        ("$$$${HOST}", {"HOST": "h"}, "$${HOST}"),
        ("$HOST", {"HOST": "h"}, "$HOST"),
        ("${HOST-x}", {"HOST": "h"}, "${HOST-x}"),
        ("${HOST:-a:-b}", {}, "a:-b"),
    ],
)
def test_interpolation(value: str, variables: dict[str, str], expected: str) -> None:
    """${VAR}, ${VAR:-default} (also for an empty VAR) and $$ expand as documented."""
    layer, issues = parse_yaml_layer(f"server:\n  host: '{value}'\n", "app.yaml", variables)
    assert issues == []
    assert layer is not None
    assert layer.data["server"]["host"] == expected


def test_missing_variable_without_default_is_an_error_at_its_line() -> None:
    """${VAR} with VAR unset and no default is an error naming file:line and the variable."""
    text = "server:\n  port: 1\n  host: ${DB_HOST}\n"
    layer, issues = parse_yaml_layer(text, "app.yaml", {})
    assert layer is not None
    [issue] = issues
    assert issue.level is Level.ERROR
    assert issue.path == ("server", "host")
    assert issue.format().startswith("app.yaml:3:3: server.host: ")
    assert "DB_HOST" in issue.message


def test_interpolated_value_origin_names_the_variable() -> None:
    """A value that is exactly one set variable says so; text mixed with variables does not."""
    text = (
        "slack:\n  bot_token: ${TOKEN}\n  base_url: ${SCHEME:-https}://${API}/api/\n"
        "  signing_secret: ${UNSET:-clear-text-in-file}\n  mock: no\n"
    )
    layer, _ = parse_yaml_layer(text, "app.yaml", {"TOKEN": "t", "API": "slack.com"})
    assert layer is not None
    token = layer.positions["slack", "bot_token"]
    assert (token.line, token.column, token.via) == (2, 3, "TOKEN")
    assert layer.positions["slack", "base_url"].via is None
    assert layer.positions["slack", "signing_secret"].via is None
    assert layer.positions["slack", "mock"].via is None


def test_escaped_dollar_is_not_an_interpolation() -> None:
    """A value using only $$ has no ``via``: it did not come from the environment."""
    layer, _ = parse_yaml_layer("slack:\n  bot_token: a$$b\n", "app.yaml", {})
    assert layer is not None
    assert layer.data["slack"]["bot_token"] == "a$b"
    assert layer.positions["slack", "bot_token"].via is None


def test_interpolation_in_list_items() -> None:
    """List items are interpolated too, each with its own position and variable."""
    text = "localization:\n  supported_locales:\n    - ${FIRST}\n    - en_US\n"
    layer, _ = parse_yaml_layer(text, "app.yaml", {"FIRST": "de_DE"})
    assert layer is not None
    assert layer.data["localization"]["supported_locales"] == ["de_DE", "en_US"]
    assert layer.positions["localization", "supported_locales", 0].via == "FIRST"


def test_interpolated_number_is_validated_as_a_number(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    """An interpolated string becomes the key's type when the schema validates it."""
    path = write(tmp_path, "app.yaml", "server:\n  port: ${PORT:-9000}\n")
    loaded = load_config({**environ, "PORT": "9100"}, files=[path])
    assert loaded.config.server.port == 9100
    assert load_config(environ, files=[path]).config.server.port == 9000


def test_interpolated_missing_variable_fails_the_load(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    """A missing variable fails the load with an error at the file line that uses it."""
    path = write(tmp_path, "app.yaml", "server:\n  port: 1\n  host: ${NOT_SET}\n")
    issues = load_errors(environ, [path])
    [issue] = [i for i in issues if i.level is Level.ERROR]
    assert issue.format().startswith(f"{path}:3:3: server.host: ")


# --- operator files -------------------------------------------------------------------------


def test_expand_paths_reads_directories_in_name_order(tmp_path: Path) -> None:
    """A directory contributes its *.yaml and *.yml files sorted by name, hidden ones skipped."""
    conf = tmp_path / "conf.d"
    for name in ("20-b.yaml", "10-a.yml", "30-c.yaml", "notes.txt", ".hidden.yaml", "x.yaml~"):
        write(conf, name, "{}\n")
    single = write(tmp_path, "single.yaml", "{}\n")
    files, issues = expand_paths([single, conf])
    assert issues == []
    assert [f.name for f in files] == ["single.yaml", "10-a.yml", "20-b.yaml", "30-c.yaml"]


def test_expand_paths_reports_missing_paths(tmp_path: Path) -> None:
    """A named path that does not exist is an error naming it."""
    missing = tmp_path / "nope.yaml"
    files, issues = expand_paths([missing])
    assert files == []
    [issue] = issues
    assert issue.level is Level.ERROR
    assert str(missing) in issue.format()


def test_config_list_orders_files_and_directories(tmp_path: Path, environ: dict[str, str]) -> None:
    """SLACK_TOOLS_CONFIG files and directories apply in list order, directory files by name."""
    first = write(tmp_path, "first.yaml", "server:\n  port: 1001\n  host: first\n")
    conf = tmp_path / "conf.d"
    write(conf, "b.yaml", "server:\n  port: 1003\n")
    write(conf, "a.yaml", "server:\n  port: 1002\n  public_url: https://a\n")
    last = write(tmp_path, "last.yaml", "server:\n  public_url: https://last\n")
    variables = {**environ, "SLACK_TOOLS_CONFIG": f"{first}:{conf}:{last}"}
    loaded = load_config(variables)
    assert loaded.config.server.port == 1003
    assert loaded.config.server.host == "first"
    assert loaded.config.server.public_url == "https://last"
    assert loaded.positions["server", "port"].source == str(conf / "b.yaml")


def test_missing_config_path_fails_the_load(tmp_path: Path, environ: dict[str, str]) -> None:
    """A SLACK_TOOLS_CONFIG entry that does not exist fails the load, naming it."""
    missing = tmp_path / "missing.yaml"
    issues = load_errors({**environ, "SLACK_TOOLS_CONFIG": str(missing)}, None)
    assert any(str(missing) in i.format() for i in issues)


def test_explicit_files_replace_the_config_variable(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    """Files passed to load_config are used instead of SLACK_TOOLS_CONFIG."""
    listed = write(tmp_path, "listed.yaml", "server:\n  port: 1111\n")
    given_file = write(tmp_path, "given.yaml", "server:\n  port: 2222\n")
    variables = {**environ, "SLACK_TOOLS_CONFIG": str(listed)}
    assert load_config(variables, files=[given_file]).config.server.port == 2222


# --- environment variables ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "path", "expected"),
    [
        ({"SLACK_TOOLS__SERVER__PORT": "9000"}, ("server", "port"), "9000"),
        ({"SLACK_TOOLS__SERVER__PUBLIC_URL": "https://x"}, ("server", "public_url"), "https://x"),
        (
            {"SLACK_TOOLS__RESILIENCE__BREAKER__OPEN_SECONDS": "5"},
            ("resilience", "breaker", "open_seconds"),
            "5",
        ),
        (
            {"SLACK_TOOLS__LOCALIZATION__SUPPORTED_LOCALES": '["de_DE", "en_US"]'},
            ("localization", "supported_locales"),
            ["de_DE", "en_US"],
        ),
        (
            {"SLACK_TOOLS__TENANTS__DEFAULTS__QUOTAS": ' {"alerts_per_minute": 5}'},
            ("tenants", "defaults", "quotas"),
            {"alerts_per_minute": 5},
        ),
        ({"ENVIRONMENT": "prod"}, ("environment",), "production"),
        ({"ENVIRONMENT": "Development"}, ("environment",), "dev"),
        ({"SLACK_TOOLS_DATA_DIR": "/var/lib/st"}, ("data_dir",), "/var/lib/st"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, ("slack", "bot_token"), "xoxb-1"),
        ({"SLACK_SIGNING_SECRET": "s3"}, ("slack", "signing_secret"), "s3"),
        ({"DATABASE_URL": "postgresql://db/x"}, ("database", "url"), "postgresql://db/x"),
        ({"REDIS_HOST": "cache"}, ("redis", "url"), "redis://cache:6379/0"),
        ({"REDIS_HOST": "cache", "REDIS_PORT": "6380"}, ("redis", "url"), "redis://cache:6380/0"),
    ],
)
def test_environment_layer_sets_keys(
    variables: dict[str, str], path: tuple[str, ...], expected: Any
) -> None:
    """Each supported variable sets its key, with the variable as the key's origin."""
    layer, issues = environment_layer(variables)
    assert issues == []
    assert lookup(layer.data, path) == expected
    origin = layer.positions[path]
    assert origin.kind is OriginKind.ENV
    assert origin.source in variables


def test_environment_layer_ignores_unrelated_variables() -> None:
    """Variables outside the documented set contribute nothing."""
    layer, issues = environment_layer({"HOME": "/root", "PATH": "/bin", "SLACK_TOOLS_X": "1"})
    assert issues == []
    assert dict(layer.data) == {}


def test_redis_port_alone_is_a_warning() -> None:
    """REDIS_PORT without REDIS_HOST sets nothing and warns, naming the variable."""
    layer, issues = environment_layer({"REDIS_PORT": "6380"})
    assert "redis" not in layer.data
    [issue] = issues
    assert issue.level is Level.WARNING
    assert issue.format().startswith("$REDIS_PORT: redis.url: ")


def test_invalid_json_is_an_error_naming_the_variable() -> None:
    """A variable starting like JSON but not valid JSON is an error naming it, not quoting it."""
    secret = "[hunter2-in-a-list"
    layer, issues = environment_layer({"SLACK_TOOLS__LOCALIZATION__SUPPORTED_LOCALES": secret})
    [issue] = issues
    assert issue.level is Level.ERROR
    variable = "$SLACK_TOOLS__LOCALIZATION__SUPPORTED_LOCALES"
    assert issue.format().startswith(f"{variable}: localization.supported_locales: invalid JSON")
    assert_no_secret(issue.format(), "hunter2")
    assert "localization" not in layer.data


@pytest.mark.parametrize(
    "variable", ["SLACK_TOOLS__", "SLACK_TOOLS__SERVER__", "SLACK_TOOLS____PORT"]
)
def test_malformed_prefixed_variable_is_an_error(variable: str) -> None:
    """A SLACK_TOOLS__ variable with an empty part is an error naming it."""
    _, issues = environment_layer({variable: "1"})
    [issue] = issues
    assert issue.level is Level.ERROR
    assert issue.format().startswith(f"${variable}: ")


def test_json_list_for_a_tuple_key_loads_as_a_tuple(environ: dict[str, str]) -> None:
    """A JSON list in a variable fills a list key, held as a tuple."""
    variables = {**environ, "SLACK_TOOLS__LOCALIZATION__SUPPORTED_LOCALES": '["it_IT","en_US"]'}
    config = load_config(variables, files=[]).config
    assert config.localization.supported_locales == ("it_IT", "en_US")


def test_invalid_json_fails_the_load(environ: dict[str, str]) -> None:
    """Invalid JSON in a variable fails the load with an error naming the variable."""
    variables = {**environ, "SLACK_TOOLS__LOCALIZATION__SUPPORTED_LOCALES": '["it_IT",'}
    issues = load_errors(variables, [])
    assert any(
        i.level is Level.ERROR and "$SLACK_TOOLS__LOCALIZATION__SUPPORTED_LOCALES" in i.format()
        for i in issues
    )


def test_bot_token_from_the_environment_is_a_secret(environ: dict[str, str]) -> None:
    """SLACK_BOT_TOKEN fills slack.bot_token as a SecretStr."""
    config = load_config({**environ, "SLACK_BOT_TOKEN": "xoxb-env"}, files=[]).config
    assert isinstance(config.slack.bot_token, SecretStr)
    assert config.slack.bot_token.get_secret_value() == "xoxb-env"


def test_specification_variables_reach_the_configuration(environ: dict[str, str]) -> None:
    """REDIS_HOST/REDIS_PORT, DATABASE_URL, SLACK_TOOLS_DATA_DIR and Slack secrets are applied."""
    variables = {
        **environ,
        "REDIS_HOST": "cache.internal",
        "REDIS_PORT": "6390",
        "DATABASE_URL": "sqlite:////srv/slack.db",
        "SLACK_TOOLS_DATA_DIR": "/srv/slack-tools",
        "SLACK_SIGNING_SECRET": "sign-me",
    }
    loaded = load_config(variables, files=[])
    config = loaded.config
    assert config.redis.url == "redis://cache.internal:6390/0"
    assert config.database.url == "sqlite:////srv/slack.db"
    assert config.data_dir == "/srv/slack-tools"
    assert config.slack.signing_secret is not None
    assert config.slack.signing_secret.get_secret_value() == "sign-me"
    assert loaded.positions["redis", "url"].location == "$REDIS_HOST"
    assert loaded.positions["database", "url"].location == "$DATABASE_URL"


def test_redis_port_alone_warns_in_the_load(environ: dict[str, str]) -> None:
    """REDIS_PORT without REDIS_HOST leaves Redis off and the load warns."""
    loaded = load_config({**environ, "REDIS_PORT": "6390"}, files=[])
    assert loaded.config.redis.url is None
    assert [w.format() for w in loaded.warnings if w.path == ("redis", "url")] == [
        "$REDIS_PORT: redis.url: REDIS_PORT is ignored without REDIS_HOST [warning]"
    ]


def test_environment_alias_selects_the_packaged_file(
    environ: dict[str, str], master_keys: str
) -> None:
    """ENVIRONMENT=prod loads the packaged production.yaml as production."""
    variables = {**production_environ(environ, master_keys), "ENVIRONMENT": "prod"}
    loaded = load_config(variables, files=[])
    assert loaded.config.environment is EnvName.PRODUCTION
    assert loaded.positions["server", "host"].source == "<packaged production.yaml>"


def test_interpolated_origin_survives_the_load(tmp_path: Path, environ: dict[str, str]) -> None:
    """After the whole load, an interpolated key's origin is its file line, via the variable."""
    path = write(tmp_path, "app.yaml", "server:\n  port: 1\n  public_url: ${PUBLIC}\n")
    loaded = load_config({**environ, "PUBLIC": "https://x"}, files=[path])
    origin = loaded.positions["server", "public_url"]
    assert (origin.source, origin.line, origin.column, origin.via) == (str(path), 3, 3, "PUBLIC")
    assert origin.describe() == f"{path}:3:3 (via ${{PUBLIC}})"


# --- precedence -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "variables", "expected_port", "expected_source"),
    [
        pytest.param([], {}, 8080, "<packaged dev.yaml>", id="packaged"),
        pytest.param(["server:\n  port: 7001\n"], {}, 7001, "0.yaml", id="file-over-packaged"),
        pytest.param(
            ["server:\n  port: 7001\n", "server:\n  port: 7002\n"],
            {},
            7002,
            "1.yaml",
            id="later-file-over-earlier",
        ),
        pytest.param(
            ["server:\n  port: 7001\n"],
            {"SLACK_TOOLS__SERVER__PORT": "7003"},
            7003,
            "SLACK_TOOLS__SERVER__PORT",
            id="variable-over-file",
        ),
        pytest.param(
            ["server:\n  port: 7001\n", "server:\n  host: h\n"],
            {},
            7001,
            "0.yaml",
            id="unrelated-later-file-keeps-value",
        ),
    ],
)
def test_precedence_of_sources(
    tmp_path: Path,
    environ: dict[str, str],
    files: list[str],
    variables: dict[str, str],
    expected_port: int,
    expected_source: str,
) -> None:
    """Packaged < operator files in order < environment variables, and provenance follows."""
    paths = [write(tmp_path, f"{i}.yaml", text) for i, text in enumerate(files)]
    loaded = load_config({**environ, **variables}, files=paths)
    assert loaded.config.server.port == expected_port
    origin = loaded.positions["server", "port"]
    assert origin.source.endswith(expected_source)


def test_sections_merge_key_by_key(tmp_path: Path, environ: dict[str, str]) -> None:
    """A file setting one key of a section keeps the section's other keys from lower layers."""
    path = write(tmp_path, "app.yaml", "monitoring:\n  log_format: json\n")
    monitoring = load_config(environ, files=[path]).config.monitoring
    assert monitoring.log_format == "json"
    assert monitoring.log_level == "DEBUG"  # from the packaged dev.yaml
    assert monitoring.profiling is True


def test_quotas_merge_key_by_key_across_layers(tmp_path: Path, environ: dict[str, str]) -> None:
    """tenants.defaults.quotas set in two files and a variable combines all three."""
    first = write(
        tmp_path, "a.yaml", "tenants:\n  defaults:\n    quotas:\n      alerts_per_minute: 10\n"
    )
    second = write(
        tmp_path, "b.yaml", "tenants:\n  defaults:\n    quotas:\n      messages_per_hour: 20\n"
    )
    variables = {
        **environ,
        "SLACK_TOOLS__TENANTS__DEFAULTS__QUOTAS": '{"admin_calls_per_minute": 30}',
    }
    quotas = load_config(variables, files=[first, second]).config.tenants.defaults.quotas
    assert dict(quotas) == {
        "alerts_per_minute": 10,
        "messages_per_hour": 20,
        "admin_calls_per_minute": 30,
    }


def test_one_quota_in_a_file_keeps_the_other_default_quotas(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    """Setting one default quota does not drop the other default quotas (no silent unlimited)."""
    path = write(
        tmp_path, "a.yaml", "tenants:\n  defaults:\n    quotas:\n      alerts_per_minute: 10\n"
    )
    quotas = load_config(environ, files=[path]).config.tenants.defaults.quotas
    assert dict(quotas) == {
        "alerts_per_minute": 10,
        "messages_per_hour": 3600,
        "admin_calls_per_minute": 600,
    }


def test_lists_are_replaced_whole(tmp_path: Path, environ: dict[str, str]) -> None:
    """A higher layer's list replaces the lower one entirely, positions included."""
    first = write(tmp_path, "a.yaml", "localization:\n  supported_locales: [fr_FR, en_US, de_DE]\n")
    second = write(tmp_path, "b.yaml", "localization:\n  supported_locales:\n    - it_IT\n")
    loaded = load_config(environ, files=[first, second])
    assert loaded.config.localization.supported_locales == ("it_IT",)
    item_paths = [p for p in loaded.positions if p[:2] == ("localization", "supported_locales")]
    assert sorted(item_paths, key=len) == [
        ("localization", "supported_locales"),
        ("localization", "supported_locales", 0),
    ]
    assert loaded.positions["localization", "supported_locales", 0].source == str(second)


def test_merge_positions_follow_the_winning_layer() -> None:
    """After merging, each path's origin is the highest layer that set it."""
    low = Layer(
        "low",
        {"server": {"port": 1, "host": "a"}},
        {
            ("server",): Origin(OriginKind.FILE, "low", 1, 1),
            ("server", "port"): Origin(OriginKind.FILE, "low", 2, 3),
            ("server", "host"): Origin(OriginKind.FILE, "low", 3, 3),
        },
    )
    high = Layer(
        "high",
        {"server": {"port": 2}},
        {
            ("server", "port"): Origin(OriginKind.ENV, "SLACK_TOOLS__SERVER__PORT"),
        },
    )
    positions = merge_positions([low, high])
    assert positions["server", "port"].source == "SLACK_TOOLS__SERVER__PORT"
    assert positions["server", "host"].source == "low"


# --- merge properties -----------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c", "d"])
SCALARS = st.one_of(st.integers(), st.text(max_size=4), st.booleans(), st.none())
NESTED = st.recursive(
    st.one_of(SCALARS, st.lists(st.integers(), max_size=3)),
    lambda children: st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)
DOCUMENTS = st.dictionaries(KEYS, NESTED, max_size=4)


def shadowed(upper: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    """Whether ``upper`` sets ``path`` or one of its ancestors or descendants."""
    node: Any = upper
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return not isinstance(node, Mapping)
        node = node[part]
    return True


@PROPERTY
@given(DOCUMENTS, DOCUMENTS)
def test_merge_upper_leaves_win_and_lower_leaves_survive(
    lower: dict[str, Any], upper: dict[str, Any]
) -> None:
    """Every leaf of the upper layer wins; every lower leaf it does not touch survives."""
    before = json.dumps([lower, upper], sort_keys=True)
    merged = merge(lower, upper, fields={})
    for path, value in leaves(upper):
        assert lookup(merged, path) == value
    for path, value in leaves(lower):
        if not shadowed(upper, path):
            assert lookup(merged, path) == value
    assert json.dumps([lower, upper], sort_keys=True) == before  # inputs untouched


@PROPERTY
@given(DOCUMENTS)
def test_merge_with_an_empty_layer_is_identity(document: dict[str, Any]) -> None:
    """Merging with an empty layer, either side, gives the same document back."""
    assert merge(document, {}, fields={}) == document
    assert merge({}, document, fields={}) == document


QUOTAS = st.dictionaries(st.sampled_from(["alerts", "messages", "admin", "x"]), st.integers(1, 99))
LOCALES = st.lists(st.sampled_from(["fr_FR", "en_US", "de_DE"]), max_size=3)


@PROPERTY
@given(
    st.lists(st.tuples(QUOTAS, st.none() | LOCALES, st.none() | st.integers(1, 65535)), max_size=5)
)
def test_folding_layers_follows_each_keys_merge_rule(
    layers: list[tuple[dict[str, int], list[str] | None, int | None]],
) -> None:
    """Folding app layers: quotas combine key by key, lists and leaves come from the last setter."""
    documents = []
    for quotas, locales, port in layers:
        document: dict[str, Any] = {"tenants": {"defaults": {"quotas": quotas}}}
        if locales is not None:
            document["localization"] = {"supported_locales": locales}
        if port is not None:
            document["server"] = {"port": port}
        documents.append(document)
    merged: dict[str, Any] = {}
    for document in documents:
        merged = merge(merged, document)
    expected_quotas: dict[str, int] = {}
    for quotas, _, _ in layers:
        expected_quotas.update(quotas)
    if layers:
        assert merged["tenants"]["defaults"]["quotas"] == expected_quotas
    set_locales = [locales for _, locales, _ in layers if locales is not None]
    if set_locales:
        assert merged["localization"]["supported_locales"] == set_locales[-1]
    set_ports = [port for _, _, port in layers if port is not None]
    if set_ports:
        assert merged["server"]["port"] == set_ports[-1]


def test_merge_replaces_a_mapping_marked_replace() -> None:
    """A mapping whose field spec says ``replace`` is taken whole from the upper layer."""
    spec = FieldSpec(
        path=("labels",),
        type_name="mapping",
        default=None,
        description="",
        is_secret=False,
        is_runtime=False,
        merge="replace",
        env_vars=(),
    )
    merged = merge({"labels": {"a": 1, "b": 2}}, {"labels": {"c": 3}}, fields={("labels",): spec})
    assert merged == {"labels": {"c": 3}}


# --- environment conflicts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "file_value"),
    [
        pytest.param({}, "production", id="default-dev-file-production"),
        pytest.param({"ENVIRONMENT": "dev"}, "production", id="dev-file-production"),
        pytest.param({"ENVIRONMENT": "development"}, "staging", id="development-file-staging"),
        pytest.param({"ENVIRONMENT": "staging"}, "dev", id="staging-file-dev"),
    ],
)
def test_a_file_cannot_change_the_environment(
    tmp_path: Path,
    environ: dict[str, str],
    master_keys: str,
    variables: dict[str, str],
    file_value: str,
) -> None:
    """``environment:`` in a file that differs from ENVIRONMENT is an error at that line."""
    path = write(tmp_path, "app.yaml", f"server:\n  port: 1234\nenvironment: {file_value}\n")
    issues = load_errors({**environ, "SLACK_TOOLS_MASTER_KEYS": master_keys, **variables}, [path])
    found = issues_at(issues, "environment")
    assert len(found) == 1, [i.format() for i in issues]
    [issue] = found
    assert issue.level is Level.ERROR
    assert issue.format().startswith(f"{path}:3:1: environment: ")


def test_a_file_repeating_the_environment_is_accepted(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    """``environment:`` equal to ENVIRONMENT is harmless."""
    path = write(tmp_path, "app.yaml", "environment: dev\n")
    assert load_config({**environ, "ENVIRONMENT": "dev"}, files=[path]).config.environment is (
        EnvName.DEV
    )


# --- encrypted values -----------------------------------------------------------------------

CLEAR = "xoxb-1111-2222-clear-value"


def test_encrypted_value_is_decrypted(
    tmp_path: Path, environ: dict[str, str], master_keys: str
) -> None:
    """An enc:v1 value for global/slack.bot_token loads as the clear secret."""
    token = cipher_for(master_keys).encrypt(CLEAR, "global/slack.bot_token")
    path = write(tmp_path, "app.yaml", f"slack:\n  bot_token: {token}\n")
    loaded = load_config({**environ, "SLACK_TOOLS_MASTER_KEYS": master_keys}, files=[path])
    assert loaded.config.slack.bot_token is not None
    assert loaded.config.slack.bot_token.get_secret_value() == CLEAR


def _tampered(token: str) -> str:
    prefix, _, body = token.rpartition(":")
    middle = len(body) // 2
    flipped = "A" if body[middle] != "A" else "B"
    return f"{prefix}:{body[:middle]}{flipped}{body[middle + 1 :]}"


def _under_another_key() -> str:
    return ValueCipher(parse_keys([f"k9:{generate_key()}"], "other")).encrypt(
        CLEAR, "global/slack.bot_token"
    )


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("tampered", "cannot decrypt"),
        ("unknown-key", "unknown key id 'k9'"),
        ("moved", "cannot decrypt"),
        ("truncated", "slack.bot_token"),
        ("not-base64", "slack.bot_token"),
        ("other-version", "slack.bot_token"),
    ],
)
def test_undecryptable_value_is_an_issue_without_the_clear_value(
    tmp_path: Path, environ: dict[str, str], master_keys: str, kind: str, fragment: str
) -> None:
    """A value that cannot be decrypted is an error at its key path that never shows the secret."""
    cipher = cipher_for(master_keys)
    good = cipher.encrypt(CLEAR, "global/slack.bot_token")
    value = {
        "tampered": _tampered(good),
        "unknown-key": _under_another_key(),
        "moved": cipher.encrypt(CLEAR, "global/slack.signing_secret"),
        "truncated": good[:-1],
        "not-base64": "enc:v1:k1:@@@@",
        "other-version": good.replace("enc:v1:", "enc:v2:"),
    }[kind]
    path = write(tmp_path, "app.yaml", f"server:\n  port: 1\nslack:\n  bot_token: {value}\n")
    variables = {**environ, "SLACK_TOOLS_MASTER_KEYS": master_keys}
    with pytest.raises(ConfigValidationError) as caught:
        load_config(variables, files=[path])
    found = [
        i for i in issues_at(caught.value.issues, "slack", "bot_token") if fragment in i.message
    ]
    assert found, [i.format() for i in caught.value.issues]
    assert found[0].level is Level.ERROR
    assert found[0].format().startswith(f"{path}:4:3: slack.bot_token: ")
    assert_no_secret(str(caught.value), CLEAR, master_keys.partition(":")[2])
    for issue in caught.value.issues:
        assert_no_secret(issue.format(), CLEAR)


def test_encrypted_value_without_a_master_key_is_an_error(
    tmp_path: Path, environ: dict[str, str], master_keys: str
) -> None:
    """An enc:v1 value with no key configured is an error even in dev, naming the key path."""
    token = cipher_for(master_keys).encrypt(CLEAR, "global/slack.bot_token")
    path = write(tmp_path, "app.yaml", f"slack:\n  bot_token: {token}\n")
    issues = load_errors(environ, [path])
    [issue] = [i for i in issues_at(issues, "slack", "bot_token") if i.level is Level.ERROR]
    assert "no master key" in issue.message


def test_invalid_master_keys_are_an_error(tmp_path: Path, environ: dict[str, str]) -> None:
    """A malformed SLACK_TOOLS_MASTER_KEYS fails the load and does not echo the key."""
    bad = "k1:bm90LTMyLWJ5dGVz"
    issues = load_errors({**environ, "SLACK_TOOLS_MASTER_KEYS": bad}, [])
    assert issues_at(issues, "security", "encryption", "key_file")
    for issue in issues:
        assert_no_secret(issue.format(), "bm90LTMyLWJ5dGVz")


# --- the resolved configuration -------------------------------------------------------------


def test_valid_production_configuration_loads(
    tmp_path: Path, environ: dict[str, str], master_keys: str
) -> None:
    """A complete production setup loads with no issue at all."""
    path = write(
        tmp_path,
        "production.yaml",
        "server:\n  public_url: https://alerts.example.com\n"
        "slack:\n  default_channel: '#ops-alerts'\n"
        "monitoring:\n  log_level: WARNING\n",
    )
    loaded = load_config(production_environ(environ, master_keys), files=[path])
    config = loaded.config
    assert loaded.issues == ()
    assert config.environment is EnvName.PRODUCTION
    assert config.debug is False
    assert config.slack.mock is False
    assert config.validation == "strict"
    assert config.security.encryption.required is True
    assert config.database.url == "postgresql+psycopg://slack@db.internal:5432/slack"
    assert config.data_dir == environ["SLACK_TOOLS_DATA_DIR"]
    assert config.server.host == "0.0.0.0"  # noqa: S104 - from the packaged production.yaml
    assert config.server.public_url == "https://alerts.example.com"
    assert config.slack.default_channel == "#ops-alerts"
    assert config.slack.bot_token is not None
    assert config.slack.bot_token.get_secret_value() == "xoxb-from-the-environment"
    assert loaded.cipher is not None


def test_resolved_configuration_is_immutable(tmp_path: Path, environ: dict[str, str]) -> None:
    """Attributes cannot be assigned, quotas cannot be mutated, and lists are tuples."""
    path = write(tmp_path, "app.yaml", "localization:\n  supported_locales: [fr_FR, en_US]\n")
    config = load_config(environ, files=[path]).config
    with pytest.raises(ValidationError):
        config.server.port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.environment = EnvName.PRODUCTION  # type: ignore[misc]
    quotas = config.tenants.defaults.quotas
    with pytest.raises(TypeError):
        quotas["alerts_per_minute"] = 1  # type: ignore[index]
    assert not hasattr(quotas, "update")
    assert isinstance(config.localization.supported_locales, tuple)
    with pytest.raises(AttributeError):
        config.localization.supported_locales.append("de_DE")  # type: ignore[attr-defined]


SECRET_VARIABLES = {
    "SLACK_BOT_TOKEN": "xoxb-secret-bot-token-0001",
    "SLACK_SIGNING_SECRET": "signing-secret-0002",
    "SLACK_TOOLS__SECURITY__JWT__SECRET": "jwt-secret-0003-0123456789abcdef-0123456789",
    "SLACK_TOOLS__DATABASE__PASSWORD": "db-password-0004",
    "SLACK_TOOLS__REDIS__PASSWORD": "redis-password-0005",
}


def test_secrets_never_appear_in_the_configuration_text(environ: dict[str, str]) -> None:
    """repr, str and the JSON dump of the resolved configuration never show a secret."""
    config = load_config({**environ, **SECRET_VARIABLES}, files=[]).config
    assert config.security.jwt.secret is not None
    secret = config.security.jwt.secret.get_secret_value()
    assert secret == "jwt-secret-0003-0123456789abcdef-0123456789"
    for text in (
        repr(config),
        str(config),
        config.model_dump_json(),
        json.dumps(config.model_dump(mode="json")),
    ):
        assert_no_secret(text, *SECRET_VARIABLES.values())


def test_secrets_never_appear_in_the_loaded_configuration_repr(environ: dict[str, str]) -> None:
    """The repr of a LoadedConfig (config, layers, positions) never shows a secret."""
    loaded: LoadedConfig = load_config({**environ, **SECRET_VARIABLES}, files=[])
    assert_no_secret(repr(loaded), *SECRET_VARIABLES.values())


def test_resolve_accepts_runtime_layers_above_everything(environ: dict[str, str]) -> None:
    """A runtime layer passed to resolve overrides the environment variables."""
    sources = load_sources(
        read_environment({**environ, "SLACK_TOOLS__SLACK__DEFAULT_CHANNEL": "#a"})
    )
    runtime = Layer(
        "runtime",
        {"slack": {"default_channel": "#b"}},
        {
            ("slack", "default_channel"): Origin(OriginKind.DATABASE, "global v3"),
        },
    )
    loaded = resolve(sources, [runtime])
    assert loaded.config.slack.default_channel == "#b"
    assert loaded.positions["slack", "default_channel"].source == "global v3"


# --- content hash ---------------------------------------------------------------------------


def test_content_hash_is_stable_for_the_same_input(tmp_path: Path, environ: dict[str, str]) -> None:
    """Loading the same sources twice gives the same hash, whatever the key order or file name."""
    first = write(tmp_path, "a.yaml", "server:\n  port: 9001\n  host: h\nslack:\n  mock: true\n")
    second = write(tmp_path, "b.yaml", "slack:\n  mock: true\nserver:\n  host: h\n  port: 9001\n")
    hashes = {
        load_config(environ, files=[first]).content_hash,
        load_config(environ, files=[first]).content_hash,
        load_config(environ, files=[second]).content_hash,
    }
    assert len(hashes) == 1
    [digest] = hashes
    assert len(digest) == 64


@pytest.mark.parametrize(
    ("text", "variables"),
    [
        pytest.param("server:\n  port: 9002\n", {}, id="file-value"),
        pytest.param("", {"SLACK_TOOLS__SERVER__PORT": "9002"}, id="variable"),
        pytest.param("localization:\n  supported_locales: [en_US]\n", {}, id="list"),
        pytest.param(
            "tenants:\n  defaults:\n    quotas:\n      messages_per_day: 1\n", {}, id="quota"
        ),
    ],
)
def test_content_hash_changes_when_a_value_changes(
    tmp_path: Path, environ: dict[str, str], text: str, variables: dict[str, str]
) -> None:
    """Changing any value, from a file or a variable, changes the hash."""
    base = write(tmp_path, "base.yaml", "server:\n  port: 9001\n")
    changed = write(tmp_path, "changed.yaml", text)
    before = load_config(environ, files=[base]).content_hash
    after = load_config({**environ, **variables}, files=[base, changed]).content_hash
    assert before != after
