"""``ConfigManager``: the specification's API over the live configuration and its documents.

Reads come from the runtime's current snapshot. Writes go to a versioned
document (global overrides, a tenant, a user): patch → encrypt secrets →
validate against the level below → append a version (check-and-set) → apply
here at once; other instances pick the change up from the database.
"""

from __future__ import annotations

import functools
import getpass
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter

from slack_tools.configs import documents, governance
from slack_tools.configs.config_loader import Layer
from slack_tools.configs.provenance import (
    SCHEMA_DEFAULT,
    Origin,
    OriginKind,
    Positions,
    dotted,
    nearest,
)
from slack_tools.configs.runtime import ConfigChange, ConfigRuntime, EffectiveConfig, ReloadStatus
from slack_tools.configs.schema import (
    APP_FIELDS,
    TENANT_FIELDS,
    USER_FIELDS,
    AppConfig,
    IsolationMode,
    TenantConfig,
    UserConfig,
)
from slack_tools.configs.security import TENANT_PREFIX, TenantCipher, ValueCipher
from slack_tools.configs.security.audit import AuditLog
from slack_tools.configs.security.gdpr import gdpr_compliant
from slack_tools.configs.trees import get_at, leaves, nest
from slack_tools.configs.validator import ConfigValidationError, Issue, Level, Stage, errors_in
from slack_tools.errors import ConfigError, ConflictError, NotFoundError
from slack_tools.storage import DocumentKey, DocumentVersion, Scope


def default_author() -> str:
    """Who a write is attributed to when nobody says: the operating-system user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class ExplainEntry:
    """One layer's say on a key (``key`` as that layer names it)."""

    layer: str
    origin: str
    key: str
    value: Any


@dataclass(frozen=True)
class Explanation:
    """A key's effective value and every layer that set it, lowest first."""

    key: str
    value: Any
    is_secret: bool
    entries: tuple[ExplainEntry, ...]


class ConfigManager:
    """Load, read, change, version and explain the configuration."""

    def __init__(self, runtime: ConfigRuntime | None = None) -> None:
        if runtime is None:
            from slack_tools.configs import default_runtime  # noqa: PLC0415 - avoids a cycle

            runtime = default_runtime()
        self.runtime = runtime

    # --- reading -------------------------------------------------------------------------

    def load(self) -> AppConfig:
        """The current application configuration (loaded on first use)."""
        return self.runtime.config

    @property
    def config(self) -> AppConfig:
        return self.runtime.config

    def reload(self, trigger: str = "manual") -> ReloadStatus:
        return self.runtime.reload(trigger)

    def on_change(self, callback: Callable[[ConfigChange], None]) -> Callable[[], None]:
        return self.runtime.on_change(callback)

    def effective(self, tenant_id: str, user_id: str | None = None) -> EffectiveConfig:
        return self.runtime.effective(tenant_id, user_id)

    def get_tenant_config(self, tenant_id: str) -> TenantConfig:
        """The tenant's effective configuration (defaults with its own values on top)."""
        return self.runtime.effective(tenant_id).tenant

    @gdpr_compliant(
        purpose="Write messages to a person in their language and time zone",
        categories=("user id", "locale", "time zone", "Slack member id"),
    )
    def get_user_config(self, tenant_id: str, user_id: str) -> UserConfig:
        user = self.runtime.effective(tenant_id, user_id).user
        assert user is not None
        return user

    def document(self, key: DocumentKey) -> DocumentVersion | None:
        """The current stored version of a document (secrets still encrypted)."""
        return self.runtime.store.current(key)

    def history(self, key: DocumentKey) -> list[DocumentVersion]:
        return self.runtime.store.history(key)

    # --- writing -------------------------------------------------------------------------

    def update_tenant_config(
        self, tenant_id: str, changes: Mapping[str, Any], **options: Any
    ) -> DocumentVersion:
        """Merge ``changes`` into the tenant's document (creating it), validated and versioned."""
        return self.apply(DocumentKey.for_scope(tenant_id), changes, **options)

    @gdpr_compliant(
        purpose="Keep a person's preferences (language, time zone, muted severities, Slack id)",
        categories=("user id", "locale", "time zone", "Slack member id"),
    )
    def update_user_config(
        self, tenant_id: str, user_id: str, changes: Mapping[str, Any], **options: Any
    ) -> DocumentVersion:
        return self.apply(DocumentKey.for_scope(tenant_id, user_id), changes, **options)

    def update_global(self, changes: Mapping[str, Any], **options: Any) -> DocumentVersion:
        """Change runtime-changeable keys for every tenant, validated and versioned."""
        return self.apply(DocumentKey(Scope.GLOBAL), changes, **options)

    def set_value(self, key: DocumentKey, path: str, value: Any, **options: Any) -> DocumentVersion:
        """Set one dotted key (``None`` removes the override)."""
        return self.apply(key, documents.patch_for(path, value), **options)

    def apply(
        self,
        key: DocumentKey,
        patch: Mapping[str, Any],
        *,
        author: str | None = None,
        comment: str = "",
        expected_version: int | None = None,
        positions: Positions | None = None,
        action: str = "update",
        audit_action: str | None = None,
    ) -> DocumentVersion:
        """Apply a JSON merge patch to a document as a new version.

        ``expected_version``: refuse with :class:`ConflictError` unless the document
        is still at that version (0: not yet written). ``positions`` point errors at
        the file the patch came from. The change is audited in its own transaction as
        ``audit_action`` (default ``config.<action>``); a refused one as a failure.
        """
        audited = audit_action or f"config.{action}"
        with self.audit.failures(audited, **_audit_where(key, audited)):
            return self._apply(
                key,
                patch,
                author=author,
                comment=comment,
                expected_version=expected_version,
                positions=positions,
                action=action,
                audit_action=audited,
            )

    @property
    def audit(self) -> AuditLog:
        return AuditLog.of(self.runtime)

    def _apply(
        self,
        key: DocumentKey,
        patch: Mapping[str, Any],
        *,
        author: str | None,
        comment: str,
        expected_version: int | None,
        positions: Positions | None,
        action: str,
        audit_action: str,
    ) -> DocumentVersion:
        if not isinstance(patch, Mapping):
            raise ConfigValidationError(
                [
                    Issue(
                        Level.ERROR,
                        Stage.SYNTAX,
                        (),
                        "a patch must be a mapping of keys to values",
                    )
                ]
            )
        with self.runtime.writing():
            current = self.runtime.store.current(key)
            stored_before = dict(current.content) if current else {}
            content = documents.apply_patch(stored_before, patch)
            return self._write(
                key,
                current,
                content,
                author=author,
                comment=comment,
                expected_version=expected_version,
                positions=positions,
                action=action,
                audit_action=audit_action,
            )

    def rollback(
        self,
        key: DocumentKey,
        version: int,
        *,
        author: str | None = None,
        comment: str = "",
        expected_version: int | None = None,
    ) -> DocumentVersion:
        """Make an old version current again, as a new version, validated again."""
        where = _audit_where(key, "config.rollback")
        with self.audit.failures("config.rollback", **where), self.runtime.writing():
            old = self.runtime.store.version(key, version)
            current = self.runtime.store.current(key)
            return self._write(
                key,
                current,
                dict(old.content),
                author=author,
                comment=comment or f"rollback to version {version}",
                expected_version=expected_version,
                positions=None,
                action="rollback",
                based_on=version,
                force=True,
                audit_action="config.rollback",
            )

    def _write(
        self,
        key: DocumentKey,
        current: DocumentVersion | None,
        content: dict[str, Any],
        *,
        author: str | None,
        comment: str,
        expected_version: int | None,
        positions: Positions | None,
        action: str,
        audit_action: str,
        based_on: int | None = None,
        force: bool = False,
    ) -> DocumentVersion:
        base_version = current.version if current else 0
        if expected_version is not None and expected_version != base_version:
            raise ConflictError(
                f"{key.label} is at version {base_version}, the change was based on "
                f"version {expected_version}: read it again and re-apply your change"
            )
        if current is not None:
            cipher = self._cipher(key, content, for_writing=True)
            content = documents.keep_stored_secrets(key, content, current.content, cipher)
            if isinstance(cipher, TenantCipher):
                # Secrets kept from before partial isolation move under the tenant's key.
                content, _ = documents.reseal(key, content, cipher)
            if not force and content == dict(current.content):
                return current
        sealed = self._validate(key, content, positions)
        entry = self.audit.draft(
            audit_action,
            diff=_audit_diff(key, current.content if current else {}, sealed, comment, based_on),
            **_audit_where(key, audit_action),
        )
        version = self.runtime.store.append(
            key,
            sealed,
            expected_version=base_version,
            author=author or default_author(),
            comment=comment,
            action=action,
            based_on=based_on,
            audit_entry=entry,
        )
        self.runtime.apply_written(version)
        return version

    def _validate(
        self, key: DocumentKey, content: dict[str, Any], positions: Positions | None
    ) -> dict[str, Any]:
        """Seal secrets and validate; returns the content to store."""
        snapshot = self.runtime.snapshot
        app = snapshot.loaded.config
        if key.scope is Scope.TENANT:
            content = _pin_strict(content, strict=self.runtime.databases.is_strict(key.tenant_id))
        cipher = self._cipher(key, content, for_writing=True)
        if isinstance(cipher, TenantCipher) and key.scope is Scope.TENANT:
            content = _pin_partial(content)
        sealed = documents.seal_secrets(
            key, content, cipher, required=app.security.encryption.required
        )
        opened, issues = documents.open_secrets(key, sealed, cipher)
        pending = Origin(OriginKind.DATABASE, f"change to {key.label}")
        where: dict[Any, Origin] = {p: pending for p, _ in leaves(opened)}
        where.update(positions or {})
        if errors_in(issues):
            raise ConfigValidationError(issues)

        def resolve_app(layer: Layer) -> tuple[BaseModel | None, list[Issue]]:
            try:
                loaded = self.runtime.resolve_with_global(Layer(layer.name, sealed, where))
            except ConfigValidationError as exc:
                return None, list(exc.issues)
            return loaded.config, list(loaded.issues)

        if key.scope is Scope.USER:
            base = documents.user_base(self.get_tenant_config(key.tenant_id))
        elif key.scope is Scope.TENANT:
            base = documents.tenant_base(app)
        else:
            base = {}
        checked = documents.check_document(key.scope, base, opened, where, resolve_app)
        if not checked.ok:
            raise ConfigValidationError(checked.issues)
        if isinstance(checked.model, TenantConfig):
            issues = []
            if "templates" in opened:
                limits = app.localization.template_limits
                issues = documents.template_issues(checked.model.templates, limits, where)
            # Policies hold for the document as it will stand, not just the keys changed, so
            # a tenant is compliant after every write (a tightened policy is met at the next).
            issues.extend(
                Issue(Level.ERROR, Stage.RULES, v.path, v.reason, nearest(where, v.path) or pending)
                for v in governance.tenant_violations(app.governance, checked.model, sealed)
            )
            if issues:
                raise ConfigValidationError(issues)
        return sealed

    # --- looking back --------------------------------------------------------------------

    def _opened(self, version: DocumentVersion) -> dict[str, Any]:
        content, _ = documents.open_secrets(
            version.key, version.content, self._cipher(version.key, version.content)
        )
        return content

    def _cipher(
        self, key: DocumentKey, content: Mapping[str, Any], *, for_writing: bool = False
    ) -> ValueCipher | None:
        """The cipher of a document's secrets (``content``: the document as it will stand)."""
        if key.scope is Scope.GLOBAL:
            return self.runtime.snapshot.loaded.cipher
        if key.scope is Scope.TENANT:
            return self.runtime.cipher_for(key.tenant_id, content, for_writing=for_writing)
        tenant = self.runtime.store.current(DocumentKey.for_scope(key.tenant_id))
        return self.runtime.cipher_for(
            key.tenant_id, tenant.content if tenant else None, for_writing=for_writing
        )

    def diff(self, key: DocumentKey, old: int, new: int) -> list[documents.Change]:
        """What changed from version ``old`` to version ``new`` (secrets masked)."""
        store = self.runtime.store
        before = {} if old == 0 else self._opened(store.version(key, old))
        after = self._opened(store.version(key, new))
        return documents.diff(key.scope, before, after)

    def show(self, key: DocumentKey) -> dict[str, Any]:
        """The effective configuration at that level, secrets masked."""
        if key.scope is Scope.GLOBAL:
            data = self.config.model_dump(mode="json", by_alias=True)
        elif key.scope is Scope.TENANT:
            data = self.get_tenant_config(key.tenant_id).model_dump(mode="json", by_alias=True)
        else:
            data = self.get_user_config(key.tenant_id, key.user_id).model_dump(
                mode="json", by_alias=True
            )
        return documents.mask(key.scope, data)

    def explain(
        self, key_path: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> Explanation:
        """Where the value of ``key_path`` comes from, layer by layer."""
        path = tuple(key_path.split("."))
        if not all(path):
            raise ConfigError(f"{key_path!r} is not a key path: expected names joined by dots")
        if user_id is not None and tenant_id is None:
            raise ConfigError("a user belongs to a tenant: give --tenant with --user")
        if user_id is not None and tenant_id is not None and _known(USER_FIELDS, path):
            return self._explain_user(path, tenant_id, user_id)
        if tenant_id is not None and _known(TENANT_FIELDS, path):
            return self._explain_tenant(path, tenant_id)
        if _known(APP_FIELDS, path) or _is_section(path):
            return self._explain_app(path)
        raise NotFoundError(
            f"unknown key {key_path!r}: see docs/configuration.md for the keys"
            + ("" if tenant_id else " (tenant and user keys need --tenant / --user)")
        )

    def _explain_app(self, path: tuple[str, ...]) -> Explanation:
        snapshot = self.runtime.snapshot
        secret = documents.is_secret_path(Scope.GLOBAL, path)
        entries = [ExplainEntry("schema", SCHEMA_DEFAULT.describe(), dotted(path), _default(path))]
        for layer in snapshot.loaded.layers:
            found, value = layer.get(path)
            if found:
                origin = layer.positions.get(path)
                entries.append(
                    ExplainEntry(
                        layer.name,
                        origin.describe() if origin else layer.name,
                        dotted(path),
                        _masked(Scope.GLOBAL, path, value),
                    )
                )
        dumped = snapshot.loaded.config.model_dump(mode="json", by_alias=True)
        _, value = get_at(documents.mask(Scope.GLOBAL, dumped), path)
        return Explanation(dotted(path), value, secret, tuple(entries))

    def _explain_tenant(self, path: tuple[str, ...], tenant_id: str) -> Explanation:
        effective = self.runtime.effective(tenant_id)
        source = documents.TENANT_BASE.get(path[0])
        entries = (
            list(self._explain_app((*source, *path[1:])).entries)
            if source
            else _own_default(TenantConfig, path)
        )
        self._add_document_entry(entries, DocumentKey.for_scope(tenant_id), path)
        dumped = documents.mask(
            Scope.TENANT, effective.tenant.model_dump(mode="json", by_alias=True)
        )
        _, value = get_at(dumped, path)
        secret = documents.is_secret_path(Scope.TENANT, path)
        return Explanation(dotted(path), value, secret, tuple(entries))

    def _explain_user(self, path: tuple[str, ...], tenant_id: str, user_id: str) -> Explanation:
        effective = self.runtime.effective(tenant_id, user_id)
        source = documents.USER_BASE.get(path[0])
        entries = (
            list(self._explain_tenant(source, tenant_id).entries)
            if source
            else _own_default(UserConfig, path)
        )
        self._add_document_entry(entries, DocumentKey.for_scope(tenant_id, user_id), path)
        assert effective.user is not None
        _, value = get_at(effective.user.model_dump(mode="json"), path)
        return Explanation(dotted(path), value, False, tuple(entries))

    def _add_document_entry(
        self, entries: list[ExplainEntry], key: DocumentKey, path: tuple[str, ...]
    ) -> None:
        current = self.runtime.store.current(key)
        if current is None:
            return
        found, value = get_at(current.content, path)
        if found:
            entries.append(
                ExplainEntry(
                    key.label,
                    documents.document_origin(current).describe(),
                    dotted(path),
                    _masked(key.scope, path, value),
                )
            )


def _audit_where(key: DocumentKey, action: str) -> dict[str, Any]:
    """Target, tenant and person of an audit entry about a document (users pseudonymised)."""
    if action.startswith("tenant."):  # a tenant's creation, written with its first version
        return {"target": f"tenant:{key.tenant_id}", "tenant": key.tenant_id}
    if key.scope is Scope.USER:
        return {
            "target": f"config:user/{key.tenant_id}",
            "tenant": key.tenant_id,
            "subject": key.user_id,
        }
    if key.scope is Scope.TENANT:
        return {"target": f"config:tenant/{key.tenant_id}", "tenant": key.tenant_id}
    return {"target": "config:global"}


def _audit_diff(
    key: DocumentKey,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    comment: str,
    based_on: int | None,
) -> dict[str, Any]:
    """What a write changed, secrets masked; a user's values stay in their (erasable) document."""
    changes = []
    for change in documents.diff(key.scope, before, after):
        item: dict[str, Any] = {"path": dotted(change.path), "kind": change.kind}
        if key.scope is not Scope.USER:
            item.update(old=change.old, new=change.new)
        changes.append(item)
    diff: dict[str, Any] = {"changes": changes}
    if comment and key.scope is not Scope.USER:
        diff["comment"] = comment
    if based_on is not None:
        diff["based_on"] = based_on
    return diff


def _pin_strict(content: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    """A tenant's document, its isolation matching where its data is.

    A strict tenant's own database is made when it is created, and its data cannot
    move in or out of it by a configuration change.
    """
    asked = content.get("isolation")
    if strict and asked in (None, IsolationMode.STRICT.value):
        return {**content, "isolation": IsolationMode.STRICT.value}
    if not strict and asked != IsolationMode.STRICT.value:
        return content
    reason = (
        "this tenant has its own database (strict isolation), which it cannot leave"
        if strict
        else "strict isolation is chosen when a tenant is created, with its own database: "
        "slack-tools tenant create ID --isolation strict"
    )
    raise ConfigValidationError([Issue(Level.ERROR, Stage.RULES, ("isolation",), reason)])


def _pin_partial(content: dict[str, Any]) -> dict[str, Any]:
    """A partial tenant's document, its isolation written out.

    Pinned, so that a later change of ``tenants.defaults.isolation`` does not change
    which key reads its values; leaving partial isolation while values stay under the
    tenant's key is refused (the master key could not read them).
    """
    if "isolation" not in content:
        return {**content, "isolation": IsolationMode.PARTIAL.value}
    if content["isolation"] == IsolationMode.PARTIAL.value:
        return content
    kept = [path for path, value in leaves(content) if _under_tenant_key(value)]
    raise ConfigValidationError(
        [
            Issue(
                Level.ERROR,
                Stage.RULES,
                ("isolation",),
                "leaving partial isolation: give "
                + ", ".join(dotted(path) for path in kept)
                + " again in the same change (the master key cannot read what the "
                "tenant's data key encrypted)",
            )
        ]
    )


def _own_default(model: type[BaseModel], path: tuple[str, ...]) -> list[ExplainEntry]:
    """The schema's default of a key only that level has (a route list, a Slack user id)."""
    field = model.model_fields.get(path[0])
    default = None if field is None else field.get_default(call_default_factory=True)
    found, value = get_at({path[0]: TypeAdapter(Any).dump_python(default, mode="json")}, path)
    if not found:
        return []
    return [ExplainEntry("schema", SCHEMA_DEFAULT.describe(), dotted(path), value)]


def _under_tenant_key(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(TENANT_PREFIX)


def _masked(scope: Scope, path: tuple[str, ...], value: Any) -> Any:
    """``value`` (found at ``path``) with every secret inside it masked, sections included."""
    _, masked = get_at(documents.mask(scope, nest(path, value)), path)
    return masked


def _known(fields: Mapping[tuple[str, ...], Any], path: tuple[str, ...]) -> bool:
    return any(path[:end] in fields for end in range(len(path), 0, -1))


def _is_section(path: tuple[str, ...]) -> bool:
    return any(spec[: len(path)] == path for spec in APP_FIELDS)


@functools.cache
def _schema_defaults() -> dict[str, Any]:
    return documents.mask(Scope.GLOBAL, AppConfig().model_dump(mode="json", by_alias=True))


def _default(path: tuple[str, ...]) -> Any:
    """The schema's default at ``path`` (a key, a section, or an entry of a default mapping)."""
    return get_at(_schema_defaults(), path)[1]
