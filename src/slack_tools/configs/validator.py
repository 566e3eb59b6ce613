"""Three validation layers — syntax, schema, business rules — reporting every issue at once.

Each issue names where (file:line:col or variable), the key path, and what was
expected; none ever quotes the offending value, because that value may be a
secret (pydantic's ``input`` is dropped for that reason).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path as FilePath
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from slack_tools.configs import governance
from slack_tools.configs.provenance import Origin, Positions, dotted, nearest
from slack_tools.configs.schema import (
    APP_FIELDS,
    AppConfig,
    EnvName,
    FieldSpec,
    Path,
    Section,
)
from slack_tools.configs.trees import plain_copy
from slack_tools.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Stage(StrEnum):
    SYNTAX = "syntax"
    SCHEMA = "schema"
    RULES = "rules"


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in the configuration."""

    level: Level
    stage: Stage
    path: Path
    message: str
    origin: Origin | None = None

    def format(self) -> str:
        """``file:line:col: key.path: message`` (the form editors and CI annotate)."""
        where = self.origin.location if self.origin else "<not set>"
        suffix = " [warning]" if self.level is Level.WARNING else ""
        return f"{where}: {dotted(self.path)}: {self.message}{suffix}"


class ConfigValidationError(ConfigError):
    """The configuration has errors; ``issues`` holds all of them (and the warnings)."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues = tuple(issues)
        errors = [issue for issue in self.issues if issue.level is Level.ERROR]
        lines = "\n".join(issue.format() for issue in errors)
        super().__init__(f"{len(errors)} configuration error(s):\n{lines}")


def errors_in(issues: Iterable[Issue]) -> list[Issue]:
    return [issue for issue in issues if issue.level is Level.ERROR]


class SecretSource(StrEnum):
    """How a secret reached the configuration; clear text in a file is refused in production."""

    ENCRYPTED = "encrypted"
    ENVIRONMENT = "environment"
    CLEAR_TEXT = "clear text"


# --- layer 2: schema --------------------------------------------------------------------


# pydantic adds union branch and validator names (``function-after[...]``, ``str``…)
# to locations; keys a person wrote may hold brackets too, and stay.
_PYDANTIC_TAG = re.compile(r"[a-z][a-z0-9-]*\[.*\]", re.DOTALL)


def _clean_loc(loc: tuple[str | int, ...]) -> Path:
    return tuple(part for part in loc if isinstance(part, int) or not _PYDANTIC_TAG.fullmatch(part))


def _known_keys(model: type[BaseModel], path: Path) -> list[str]:
    current: Any = model
    for part in path:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            return []
        info = current.model_fields.get(part) or next(
            (f for f in current.model_fields.values() if f.alias == part), None
        )
        if info is None:
            return []
        current = _section_of(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _section_of(annotation: Any) -> Any:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, Section):
            return candidate
        for inner in getattr(candidate, "__args__", ()):
            if isinstance(inner, type) and issubclass(inner, Section):
                return inner
    return annotation


def _message(error: Mapping[str, Any], spec: FieldSpec | None, model: type[BaseModel]) -> str:
    kind = error["type"]
    path = _clean_loc(error["loc"])
    if kind == "extra_forbidden":
        known = _known_keys(model, path[:-1])
        close = difflib.get_close_matches(str(path[-1]), known, n=1) if path else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    text = str(error["msg"]).removeprefix("Value error, ")
    text = text[0].lower() + text[1:] if text else text
    if spec is not None and not text.startswith("expected"):
        text = f"{text} (expected {spec.type_name})"
    return text


def schema_issues(
    model: type[ModelT],
    data: Mapping[str, Any],
    positions: Positions,
    *,
    fields: Mapping[tuple[str, ...], FieldSpec],
    unknown_keys: Level,
) -> tuple[ModelT | None, list[Issue]]:
    """Validate ``data`` against ``model``; unknown keys are reported at ``unknown_keys``.

    When unknown keys are only warnings, they are removed and the rest is
    validated again, so a typo in dev never hides the real value's errors.
    """
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)

    issues: list[Issue] = []
    unknown: list[Path] = []
    for error in errors:
        path = _clean_loc(error["loc"])
        is_unknown = error["type"] == "extra_forbidden"
        if is_unknown:
            unknown.append(path)
        spec = fields.get(tuple(str(p) for p in path))
        issues.append(
            Issue(
                level=unknown_keys if is_unknown else Level.ERROR,
                stage=Stage.SCHEMA,
                path=path,
                message=_message(error, spec, model),
                origin=nearest(positions, path),
            )
        )
    if errors_in(issues):
        return None, issues
    pruned = _without(data, unknown)
    try:
        return model.model_validate(pruned), issues
    except ValidationError:  # pragma: no cover - removing keys cannot create new errors
        return None, issues


def _without(data: Mapping[str, Any], paths: list[Path]) -> dict[str, Any]:
    copy = plain_copy(data)
    for path in paths:
        node: Any = copy
        for part in path[:-1]:
            node = node[part]
        node.pop(path[-1], None)
    return copy


# --- layer 3: business rules -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What the rules need besides the configuration itself."""

    positions: Positions
    secret_sources: Mapping[tuple[str, ...], SecretSource]
    has_master_key: bool


Rule = Callable[[AppConfig, RuleContext], Iterable[tuple[Path, str]]]


def _no_debug(config: AppConfig, _: RuleContext) -> Iterable[tuple[Path, str]]:
    if config.debug:
        yield ("debug",), "debug must be off outside dev"
    if config.monitoring.profiling:
        yield ("monitoring", "profiling"), "profiling must be off outside dev"


def _no_mock(config: AppConfig, _: RuleContext) -> Iterable[tuple[Path, str]]:
    if config.slack.mock:
        yield ("slack", "mock"), "the Slack fake must not be used outside dev"


def _strict_validation(config: AppConfig, _: RuleContext) -> Iterable[tuple[Path, str]]:
    if config.validation != "strict":
        yield ("validation",), "validation must be strict outside dev"


def _encryption(config: AppConfig, context: RuleContext) -> Iterable[tuple[Path, str]]:
    if not config.security.encryption.required:
        yield ("security", "encryption", "required"), "encryption must be required outside dev"
    if not context.has_master_key:
        yield (
            ("security", "encryption", "key_file"),
            "no master key: set SLACK_TOOLS_MASTER_KEYS or security.encryption.key_file",
        )
    for path, source in sorted(context.secret_sources.items()):
        if source is SecretSource.CLEAR_TEXT:
            hint = f"slack-tools config encrypt {dotted(path)}"
            yield (
                path,
                f"secret written in clear text: encrypt it ({hint}) or set it from the environment",
            )


def _credentials_out_of_urls(config: AppConfig, _: RuleContext) -> Iterable[tuple[Path, str]]:
    for path, url in (
        (("database", "url"), config.database.url),
        (("redis", "url"), config.redis.url),
    ):
        if url and urlsplit(url).password:
            yield (
                path,
                f"password inside the URL: put it in {path[0]}.password (encrypted) instead",
            )


def _https(config: AppConfig, _: RuleContext) -> Iterable[tuple[Path, str]]:
    if not config.slack.mock and urlsplit(config.slack.base_url).scheme != "https":
        yield ("slack", "base_url"), "the Slack API must be reached over https"


def _production_storage(config: AppConfig, _: RuleContext) -> Iterable[tuple[Path, str]]:
    if config.environment is not EnvName.PRODUCTION:
        return
    url = config.database.url
    if not url:
        yield ("database", "url"), "production needs an explicit database URL (DATABASE_URL)"
    elif url.startswith("sqlite") and (url.endswith(":memory:") or url.rstrip("/") == "sqlite:"):
        yield ("database", "url"), "an in-memory database loses every accepted alert on restart"
    if not config.data_dir:
        yield ("data_dir",), "production needs a data directory: set SLACK_TOOLS_DATA_DIR"


def _admin_tokens(config: AppConfig, _: RuleContext) -> Iterable[tuple[Path, str]]:
    jwt = config.security.jwt
    for key in ("jwks_file", "private_key_file"):
        path = getattr(jwt, key)
        if path is not None and not FilePath(path).is_file():
            yield ("security", "jwt", key), f"{path}: no such file"
    # A shared secret signs as well as verifies: anyone who reads it can mint an admin
    # token. Outside dev the admin API trusts public keys unless told otherwise.
    if config.environment is EnvName.DEV or not config.security.admin_api:
        return
    if jwt.secret is not None and not jwt.allow_hs256:
        shared = (
            "HS256 (a shared secret) is refused outside dev: use jwks_file or jwks_url, "
            "or set security.jwt.allow_hs256"
        )
        yield ("security", "jwt", "secret"), shared
    if jwt.secret is None and jwt.jwks_file is None and jwt.jwks_url is None:
        unverified = (
            "the admin API is on but nothing verifies its tokens: set security.jwt.jwks_url "
            "or jwks_file (or security.admin_api: false)"
        )
        yield ("security", "jwt", "jwks_url"), unverified


# What the rules above demand, by key, for the configuration reference.
RULE_NOTES: Mapping[tuple[str, ...], str] = {
    ("debug",): "must be false outside dev",
    ("monitoring", "profiling"): "must be false outside dev",
    ("slack", "mock"): "must be false outside dev",
    ("validation",): "must be strict outside dev",
    ("security", "encryption", "required"): "must be true outside dev",
    ("security", "encryption", "key_file"): (
        "outside dev a master key is required (this file or SLACK_TOOLS_MASTER_KEYS)"
    ),
    ("slack", "base_url"): "must be https outside dev unless slack.mock",
    ("database", "url"): (
        "production: required, not in-memory; outside dev: no password inside the URL"
    ),
    ("redis", "url"): "outside dev: no password inside the URL",
    ("data_dir",): "production: required",
    ("security", "jwt", "secret"): "outside dev: refused unless security.jwt.allow_hs256",
    ("security", "jwt", "jwks_file"): "must be an existing file",
    ("security", "jwt", "private_key_file"): "must be an existing file",
    ("security", "jwt", "jwks_url"): (
        "outside dev with security.admin_api: this, jwks_file or an allowed secret is required"
    ),
    ("delivery", "lease_seconds"): "at least 3 times slack.timeout_seconds",
    ("localization", "catalogs_directory"): "must be an existing directory",
    ("localization", "templates_directory"): "must be an existing directory",
    ("slack", "default_channel"): "must match one of governance.channel_patterns, if any",
    ("tenants", "defaults", "quotas"): (
        "at most governance.max_quotas of the default plan, if it has maximums"
    ),
}
SECRET_NOTE = "secret: outside dev, encrypted (enc:v1:…) or from the environment"  # noqa: S105 - prose  # nosec B105


def _lease_outlasts_a_send(config: AppConfig, _: RuleContext) -> Iterable[tuple[Path, str]]:
    # One send may take an edit and a fallback post: a lease shorter than that lets another
    # instance take the delivery over while it is still being sent, and post it twice.
    if config.delivery.lease_seconds < LEASE_CALLS * config.slack.timeout_seconds:
        least = LEASE_CALLS * config.slack.timeout_seconds
        message = f"must be at least {LEASE_CALLS} times slack.timeout_seconds ({least:g} s)"
        yield ("delivery", "lease_seconds"), message


LEASE_CALLS = 3


def _localization_directories(config: AppConfig, _: RuleContext) -> Iterable[tuple[Path, str]]:
    for key in ("catalogs_directory", "templates_directory"):
        directory = getattr(config.localization, key)
        if directory is not None and not FilePath(directory).is_dir():
            yield ("localization", key), f"{directory}: no such directory"


def _governed_defaults(config: AppConfig, _: RuleContext) -> Iterable[tuple[Path, str]]:
    # A tenant that names no channel or quota inherits these: were they outside the policies,
    # a global override could do for every such tenant what no tenant change may do.
    for violation in governance.default_violations(config):
        yield violation.path, violation.reason


RULES: tuple[Rule, ...] = (
    _no_debug,
    _no_mock,
    _strict_validation,
    _encryption,
    _credentials_out_of_urls,
    _https,
    _production_storage,
    _admin_tokens,
    _lease_outlasts_a_send,
    _localization_directories,
    _governed_defaults,
)


def rule_issues(config: AppConfig, context: RuleContext) -> list[Issue]:
    """Business rules of the environment: errors in staging/production, warnings in dev."""
    level = Level.WARNING if config.environment is EnvName.DEV else Level.ERROR
    return [
        Issue(level, Stage.RULES, path, message, nearest(context.positions, path))
        for rule in RULES
        for path, message in rule(config, context)
    ]


def validate_app(
    data: Mapping[str, Any],
    positions: Positions,
    *,
    secret_sources: Mapping[tuple[str, ...], SecretSource],
    has_master_key: bool,
) -> tuple[AppConfig | None, list[Issue]]:
    """Schema then business rules for the whole application configuration."""
    environment = str(data.get("environment", EnvName.DEV.value))
    permissive = data.get("validation", "permissive" if environment == "dev" else "strict")
    unknown = Level.WARNING if permissive == "permissive" and environment == "dev" else Level.ERROR
    config, issues = schema_issues(
        AppConfig, data, positions, fields=APP_FIELDS, unknown_keys=unknown
    )
    if config is None:
        note = "the environment's rules are checked once the errors above are fixed"
        return None, [*issues, Issue(Level.WARNING, Stage.RULES, (), note)]
    context = RuleContext(positions, secret_sources, has_master_key)
    issues.extend(rule_issues(config, context))
    return (None if errors_in(issues) else config), issues
