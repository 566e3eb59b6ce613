"""Runtime documents: patches, validation against their base, secrets, and diffs.

A stored document holds only what its level overrides (a tenant's own values,
not the defaults), so a change of a default reaches every tenant that did not
override it. The effective value of a document is its base (computed from the
level below) with the document merged on top, validated as a whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import BaseModel

from slack_tools.configs import security
from slack_tools.configs.config_loader import Layer, merge
from slack_tools.configs.provenance import Origin, OriginKind, Positions, dotted, nearest
from slack_tools.configs.schema import (
    APP_FIELDS,
    TENANT_FIELDS,
    USER_FIELDS,
    AppConfig,
    FieldSpec,
    Path,
    TemplateLimitsConfig,
    TenantConfig,
    UserConfig,
)
from slack_tools.configs.templates import TemplateEngine
from slack_tools.configs.trees import leaves, nest, plain_copy, set_at
from slack_tools.configs.validator import Issue, Level, Stage, errors_in, schema_issues
from slack_tools.errors import ConfigError, SecretError
from slack_tools.storage import DocumentKey, DocumentVersion, Scope

log = structlog.get_logger(__name__)

MASK = "********"

# Where a tenant's and a user's values come from when their document does not set them.
TENANT_BASE: Mapping[str, tuple[str, ...]] = {
    "slack_channel": ("slack", "default_channel"),
    "alert_threshold": ("tenants", "defaults", "alert_threshold"),
    "locale": ("localization", "default_locale"),
    "timezone": ("localization", "default_timezone"),
    "plan": ("tenants", "defaults", "plan"),
    "quotas": ("tenants", "defaults", "quotas"),
    "isolation": ("tenants", "defaults", "isolation"),
    "retention_days": ("tenants", "defaults", "retention_days"),
}
USER_BASE: Mapping[str, tuple[str, ...]] = {"locale": ("locale",), "timezone": ("timezone",)}


def fields_for(scope: Scope) -> Mapping[tuple[str, ...], FieldSpec]:
    return {Scope.GLOBAL: APP_FIELDS, Scope.TENANT: TENANT_FIELDS, Scope.USER: USER_FIELDS}[scope]


def model_for(scope: Scope) -> type[BaseModel]:
    models: dict[Scope, type[BaseModel]] = {
        Scope.GLOBAL: AppConfig,
        Scope.TENANT: TenantConfig,
        Scope.USER: UserConfig,
    }
    return models[scope]


def tenant_base(app: AppConfig) -> dict[str, Any]:
    """The values a tenant has before its document says anything."""
    defaults = app.tenants.defaults
    return {
        "slack_channel": app.slack.default_channel,
        "alert_threshold": defaults.alert_threshold,
        "locale": app.localization.default_locale,
        "timezone": app.localization.default_timezone,
        "plan": defaults.plan,
        "quotas": dict(defaults.quotas),
        "isolation": defaults.isolation.value,
        "retention_days": defaults.retention_days,
    }


def user_base(tenant: TenantConfig) -> dict[str, Any]:
    """The values a user has before their document says anything."""
    return {"locale": tenant.locale, "timezone": tenant.timezone}


def document_origin(version: DocumentVersion) -> Origin:
    when = version.created_at.strftime("%Y-%m-%d %H:%M:%SZ")
    return Origin(
        OriginKind.DATABASE,
        f"{version.key.label}, version {version.version} by {version.author} at {when}",
    )


# --- patches ---------------------------------------------------------------------------


def apply_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386): mappings merge, ``null`` removes a key, the rest replaces."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            below = result.get(key)
            result[key] = apply_patch(below if isinstance(below, Mapping) else {}, value)
        else:
            result[key] = value
    return result


def patch_for(path: str, value: Any) -> dict[str, Any]:
    """``("a.b", 1)`` → ``{"a": {"b": 1}}``."""
    parts = tuple(path.split("."))
    if not all(parts):
        raise ConfigError(f"{path!r} is not a key path: expected names joined by dots, like a.b")
    return nest(parts, value)


def _spec_for(fields: Mapping[tuple[str, ...], FieldSpec], path: Path) -> FieldSpec | None:
    for end in range(len(path), 0, -1):
        spec = fields.get(tuple(str(p) for p in path[:end]))
        if spec is not None:
            return spec
    return None


def is_secret_path(scope: Scope, path: Path) -> bool:
    spec = _spec_for(fields_for(scope), path)
    return spec is not None and spec.is_secret


# --- secrets in documents --------------------------------------------------------------


def _context(key: DocumentKey, path: Path) -> str:
    return security.context_for(
        dotted(path),
        tenant=key.tenant_id or None,
        user=key.user_id or None,
    )


def seal_secrets(
    key: DocumentKey,
    content: Mapping[str, Any],
    cipher: security.ValueCipher | None,
    *,
    required: bool,
) -> dict[str, Any]:
    """Encrypt every secret written in clear; refuse clear text when encryption is required."""
    result = plain_copy(content)
    for path, value in list(leaves(result)):
        if not isinstance(value, str) or security.is_encrypted(value):
            continue
        if not is_secret_path(key.scope, path):
            continue
        if cipher is None:
            if required:
                raise SecretError(
                    f"{dotted(path)}: encryption is required but no master key is configured "
                    "(SLACK_TOOLS_MASTER_KEYS or security.encryption.key_file)"
                )
            log.warning(
                "config.secret_stored_in_clear",
                document=key.label,
                key=dotted(path),
                hint="set SLACK_TOOLS_MASTER_KEYS, then run slack-tools keys rotate",
            )
            continue
        set_at(result, path, cipher.encrypt(value, _context(key, path)))
    return result


def keep_stored_secrets(
    key: DocumentKey,
    content: Mapping[str, Any],
    stored: Mapping[str, Any],
    cipher: security.ValueCipher | None,
) -> dict[str, Any]:
    """Put back the stored ciphertext of every secret given again with the same value.

    Encryption is randomised, so without this re-sending an unchanged token would
    look like a change: a new version, and a diff saying the secret changed.
    """
    result = plain_copy(content)
    if cipher is None:
        return result
    previous = dict(leaves(stored))
    for path, value in list(leaves(result)):
        old = previous.get(path)
        if not (isinstance(value, str) and isinstance(old, str) and security.is_encrypted(old)):
            continue
        if security.is_encrypted(value) or not is_secret_path(key.scope, path):
            continue
        try:
            if cipher.decrypt(old, _context(key, path)) == value:
                set_at(result, path, old)
        except SecretError:
            continue  # undecryptable old value: the new one is stored as given
    return result


def open_secrets(
    key: DocumentKey, content: Mapping[str, Any], cipher: security.ValueCipher | None
) -> tuple[dict[str, Any], list[Issue]]:
    """Decrypt every ``enc:`` value of a stored document."""
    result = plain_copy(content)
    issues: list[Issue] = []
    for path, value in list(leaves(result)):
        if not security.is_encrypted(value):
            continue
        if cipher is None:
            issues.append(
                Issue(
                    Level.ERROR,
                    Stage.SCHEMA,
                    path,
                    "encrypted value but no master key is configured",
                )
            )
            continue
        try:
            set_at(result, path, cipher.decrypt(value, _context(key, path)))
        except SecretError as exc:
            issues.append(Issue(Level.ERROR, Stage.SCHEMA, path, str(exc)))
    return result, issues


def reseal(
    key: DocumentKey, content: Mapping[str, Any], cipher: security.ValueCipher
) -> tuple[dict[str, Any], int]:
    """Re-encrypt with the active key every value that uses another, and encrypt every
    secret stored in clear (written before a key was configured); returns the count."""
    result = plain_copy(content)
    changed = 0
    for path, value in list(leaves(result)):
        if security.is_encrypted(value):
            renewed = cipher.reencrypt(value, _context(key, path))
        elif isinstance(value, str) and is_secret_path(key.scope, path):
            renewed = cipher.encrypt(value, _context(key, path))
        else:
            continue
        if renewed != value:
            set_at(result, path, renewed)
            changed += 1
    return result, changed


# --- validation ------------------------------------------------------------------------


def global_key_issues(content: Mapping[str, Any], positions: Positions) -> list[Issue]:
    """Only keys marked runtime-changeable may appear in the global overrides document."""
    issues: list[Issue] = []
    for path, _ in leaves(content):
        spec = _spec_for(APP_FIELDS, path)
        where = positions.get(path)
        if spec is None:
            issues.append(Issue(Level.ERROR, Stage.SCHEMA, path, "unknown key", where))
        elif not spec.is_runtime:
            issues.append(
                Issue(
                    Level.ERROR,
                    Stage.SCHEMA,
                    path,
                    "not changeable at run time: set it in a configuration file or the environment",
                    where,
                )
            )
    return issues


@dataclass(frozen=True)
class Checked:
    """A document merged onto its base and validated."""

    model: BaseModel | None
    issues: list[Issue]

    @property
    def ok(self) -> bool:
        return self.model is not None and not errors_in(self.issues)


def check_document(
    scope: Scope,
    base: Mapping[str, Any],
    content: Mapping[str, Any],
    positions: Positions,
    resolve_app: Callable[[Layer], tuple[BaseModel | None, list[Issue]]] | None = None,
) -> Checked:
    """Validate ``content`` (secrets already opened) as the document of ``scope`` over ``base``.

    The global document is checked key by key here, then as part of the whole
    application configuration by ``resolve_app`` (business rules included).
    """
    if scope is Scope.GLOBAL:
        issues = global_key_issues(content, positions)
        if issues or resolve_app is None:
            return Checked(None, issues)
        model, issues = resolve_app(Layer("global overrides", content, positions))
        return Checked(model, issues)
    merged = merge(base, content, fields_for(scope))
    model, issues = schema_issues(
        model_for(scope), merged, positions, fields=fields_for(scope), unknown_keys=Level.ERROR
    )
    return Checked(model, issues)


_TEMPLATE_NAME = re.compile(r"(group|digest|reply)(\.[a-z]{2}(_[A-Z]{2})?)?")


def template_issues(
    templates: Mapping[str, str], limits: TemplateLimitsConfig, positions: Positions
) -> list[Issue]:
    """A tenant's templates that would never be used or do not compile, named by key and line.

    Checked when a tenant saves them; what only rendering finds (work budget, output
    size) still falls back to the default template at delivery.
    """
    issues: list[Issue] = []
    engine = TemplateEngine(limits=limits)
    for name, source in sorted(templates.items()):
        path = ("templates", name)
        where = nearest(positions, path)
        if not _TEMPLATE_NAME.fullmatch(name):
            message = (
                "unknown template name: group, digest or reply, optionally followed by "
                ".<language> or .<locale> (group.fr, group.de_DE)"
            )
            issues.append(Issue(Level.ERROR, Stage.SCHEMA, path, message, where))
            continue
        problem = engine.check_tenant_template(name, source)
        if problem is not None:
            line = f"template line {problem.line}: " if problem.line else ""
            issues.append(Issue(Level.ERROR, Stage.SCHEMA, path, line + problem.message, where))
    return issues


# --- diffs and masking -----------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    path: Path
    kind: str  # "added", "removed", "changed"
    old: Any
    new: Any

    def format(self) -> str:
        sign = {"added": "+", "removed": "-", "changed": "~"}[self.kind]
        if self.kind == "added":
            return f"{sign} {dotted(self.path)}: {_show(self.new)}"
        if self.kind == "removed":
            return f"{sign} {dotted(self.path)}: {_show(self.old)}"
        return f"{sign} {dotted(self.path)}: {_show(self.old)} → {_show(self.new)}"


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def mask(scope: Scope, data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with every secret value replaced by a mask."""
    result = plain_copy(data)
    for path, value in list(leaves(result)):
        if value is not None and is_secret_path(scope, path):
            set_at(result, path, MASK)
    return result


def diff(scope: Scope, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """What changed between two stored contents; secrets show only that they changed."""
    before, after = dict(leaves(old)), dict(leaves(new))
    changes: list[Change] = []
    for path in sorted(set(before) | set(after), key=lambda p: tuple(str(x) for x in p)):
        secret = is_secret_path(scope, path)
        old_value = MASK if secret and path in before else before.get(path)
        new_value = MASK if secret and path in after else after.get(path)
        if path not in before:
            changes.append(Change(path, "added", None, new_value))
        elif path not in after:
            changes.append(Change(path, "removed", old_value, None))
        elif before[path] != after[path]:
            if secret:
                new_value = "******** (changed)"
            changes.append(Change(path, "changed", old_value, new_value))
    return changes
