"""GDPR: the register of processing activities, personal data kept out of logs, export and erasure.

```python
@gdpr_compliant
def handle_user_data(user_id: str): ...

@gdpr_compliant(purpose="Mention the on-call person", categories=("slack id",))
def mention(tenant_id: str, slack_user_id: str): ...
```

Decorating records the activity in :data:`REGISTER` (``slack-tools gdpr register``
prints it). While the function runs, the values of its personal arguments are held
in a context variable and :func:`mask_personal_data`, a structlog processor,
replaces them in every log line. ``export_user`` gathers what is held about a
person; ``erase_user`` deletes it and the mapping of their audit pseudonym, so the
trail keeps verifying while no longer naming them.

Each store of personal data is a :class:`PersonalData` in :data:`PERSONAL_DATA`;
a new one (acknowledgements, for instance) adds itself there and is exported and
erased with the rest.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, cast, overload

import sqlalchemy as sa

from slack_tools.configs.security.audit import AuditLog
from slack_tools.storage import audit as audit_store
from slack_tools.storage import delivery as outbox
from slack_tools.storage import documents as document_store
from slack_tools.storage.database import Database, write_transaction
from slack_tools.storage.documents import DocumentStore
from slack_tools.storage.tenants import TenantStore

if TYPE_CHECKING:
    from slack_tools.configs.runtime import ConfigRuntime

P = ParamSpec("P")
R = TypeVar("R")

MASK = "[personal]"
# Arguments named like these identify a person: personal unless said otherwise.
PERSONAL_NAMES = frozenset(
    {
        "user_id",
        "slack_user_id",
        "user",
        "username",
        "user_name",
        "email",
        "email_address",
        "name",
        "full_name",
        "first_name",
        "last_name",
        "display_name",
        "phone",
        "phone_number",
        "ip",
        "ip_address",
        "address",
    }
)
_SHORTEST = 3  # shorter values would blank ordinary words in every line


@dataclass(frozen=True)
class ProcessingActivity:
    """One entry of the register (GDPR article 30): what is processed, why, which arguments."""

    name: str
    purpose: str
    categories: tuple[str, ...]
    personal_args: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "purpose": self.purpose,
            "categories": list(self.categories),
            "personal_args": list(self.personal_args),
        }


REGISTER: dict[str, ProcessingActivity] = {}

_personal: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "slack_tools_personal_values", default=frozenset()
)


def register() -> list[ProcessingActivity]:
    """Every processing activity declared so far, by name."""
    return [REGISTER[name] for name in sorted(REGISTER)]


@contextmanager
def personal_values(values: Sequence[str]) -> Iterator[None]:
    """Mask ``values`` in every log line written inside the block."""
    kept = frozenset(v for v in values if len(v) >= _SHORTEST)
    token = _personal.set(_personal.get() | kept)
    try:
        yield
    finally:
        _personal.reset(token)


def _mask(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, Mapping):
        return {k: _mask(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, secrets) for v in value]
    return value


def mask_personal_data(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: personal values of the running ``@gdpr_compliant`` call masked."""
    held = _personal.get()
    if not held:
        return event_dict
    ordered = sorted(held, key=len, reverse=True)  # a value containing another goes whole
    for key, value in list(event_dict.items()):
        event_dict[key] = _mask(value, ordered)
    return event_dict


def _collect(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int):
        return [str(value)]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _collect(v)]
    if isinstance(value, list | tuple | set | frozenset):
        return [s for v in value for s in _collect(v)]
    return []


@overload
def gdpr_compliant(function: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def gdpr_compliant(
    *,
    purpose: str = "",
    categories: Sequence[str] = (),
    personal_args: Sequence[str] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def gdpr_compliant(
    function: Callable[..., Any] | None = None,
    /,
    *,
    purpose: str = "",
    categories: Sequence[str] = (),
    personal_args: Sequence[str] | None = None,
) -> Any:
    """Declare a function that processes personal data: registered, and kept out of logs.

    Bare, arguments named like identifiers of people (:data:`PERSONAL_NAMES`) are
    personal; ``personal_args`` names them instead.
    """

    def decorate(target: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(target)
        names = tuple(
            personal_args
            if personal_args is not None
            else (p for p in signature.parameters if p in PERSONAL_NAMES)
        )
        unknown = [n for n in names if n not in signature.parameters]
        if unknown:
            raise TypeError(
                f"{target.__qualname__}: personal_args {unknown} are not among its parameters"
            )
        name = f"{target.__module__}.{target.__qualname__}"
        REGISTER[name] = ProcessingActivity(
            name=name,
            purpose=purpose or (inspect.getdoc(target) or "").split("\n")[0],
            categories=tuple(categories) or tuple(names),
            personal_args=names,
        )

        def values(args: Any, kwargs: Any) -> list[str]:
            try:
                bound = signature.bind_partial(*args, **kwargs)
            except TypeError:
                return []
            return [s for n in names for s in _collect(bound.arguments.get(n))]

        if inspect.iscoroutinefunction(target):

            @functools.wraps(target)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with personal_values(values(args, kwargs)):
                    return await target(*args, **kwargs)

            return cast("Callable[P, R]", run_async)

        @functools.wraps(target)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with personal_values(values(args, kwargs)):
                return target(*args, **kwargs)

        return run

    return decorate if function is None else decorate(function)


# --- what is held about a person ----------------------------------------------------------


class PersonalData(Protocol):
    """A store of data about people, keyed by user id, that export and erasure visit."""

    @property
    def name(self) -> str: ...

    def export(self, connection: sa.Connection, user_id: str, tenant_id: str | None) -> Any: ...

    def erase(
        self, connection: sa.Connection, user_id: str, tenant_id: str | None
    ) -> Mapping[str, int]: ...


@dataclass(frozen=True)
class UserDocuments:
    """A user's configuration documents (preferences, Slack id) and every version of them."""

    name: str = "configuration"

    def export(self, connection: sa.Connection, user_id: str, tenant_id: str | None) -> Any:
        store = DocumentStore(connection.engine)
        return [
            {
                "tenant": key.tenant_id,
                "versions": [
                    {
                        "version": v.version,
                        "action": v.action,
                        "comment": v.comment,
                        "at": v.created_at.isoformat(),
                        "content": dict(v.content),
                    }
                    for v in store.history(key)
                ],
            }
            for key in document_store.user_document_keys(connection, user_id, tenant_id)
        ]

    def erase(
        self, connection: sa.Connection, user_id: str, tenant_id: str | None
    ) -> Mapping[str, int]:
        return document_store.erase_user_documents(connection, user_id, tenant_id)


@dataclass(frozen=True)
class Acknowledgements:
    """Who pressed "Acknowledge" under an alert message, by their Slack user id.

    A person is known by their user id and by the Slack user id of their preferences,
    so this store is visited before their documents are erased.
    """

    name: str = "acknowledgements"

    def _identities(
        self, connection: sa.Connection, user_id: str, tenant_id: str | None
    ) -> list[str]:
        slack_ids = document_store.user_values(connection, user_id, "slack_user_id", tenant_id)
        return sorted({user_id, *slack_ids})

    def export(self, connection: sa.Connection, user_id: str, tenant_id: str | None) -> Any:
        return [
            ack
            for identity in self._identities(connection, user_id, tenant_id)
            for ack in outbox.acknowledgements_by(connection, identity, tenant_id)
        ]

    def erase(
        self, connection: sa.Connection, user_id: str, tenant_id: str | None
    ) -> Mapping[str, int]:
        erased = sum(
            outbox.forget_acknowledgements_by(connection, identity, tenant_id)
            for identity in self._identities(connection, user_id, tenant_id)
        )
        return {"acknowledgements": erased}


# Add a store here to have it exported and erased; a store that finds the person through
# their preferences comes before UserDocuments, which deletes those.
PERSONAL_DATA: list[PersonalData] = [Acknowledgements(), UserDocuments()]


@dataclass(frozen=True)
class Erasure:
    """What an erasure removed, per kind, and the pseudonym the trail keeps."""

    user_id: str
    pseudonym: str
    removed: Mapping[str, int] = field(default_factory=dict)


def _databases(runtime: ConfigRuntime, tenant_id: str | None) -> list[tuple[str | None, Database]]:
    """Where a person's data may be: one tenant's database, or every database.

    A strictly isolated tenant's data is in its own database; the others' in the
    shared one. The shared database comes first.
    """
    if tenant_id is None:
        return list(runtime.databases.labelled())
    database = runtime.database_for(tenant_id)
    return [(None if database is runtime.database else tenant_id, database)]


def _merged(parts: Sequence[Any]) -> Any:
    """One store's exports of several databases as one (lists are concatenated)."""
    if all(isinstance(part, list) for part in parts):
        return [item for part in parts for item in part]
    return parts[0] if len(parts) == 1 else list(parts)


@gdpr_compliant(
    purpose="Give a person everything held about them (GDPR article 15)",
    categories=("user id", "preferences", "audit entries"),
    personal_args=("user_id",),
)
def export_user(
    runtime: ConfigRuntime, user_id: str, tenant_id: str | None = None
) -> dict[str, Any]:
    """Everything held about ``user_id`` (in one tenant, or all) as JSON-ready data; audited.

    Every database is read: the shared one and each strictly isolated tenant's own.
    """
    log = AuditLog.of(runtime)
    target = f"user:{tenant_id or '*'}"
    with log.failures("gdpr.export", target=target, tenant=tenant_id, subject=user_id):
        parts: dict[str, list[Any]] = {s.name: [] for s in PERSONAL_DATA}
        authored: list[dict[str, Any]] = []
        for _, database in _databases(runtime, tenant_id):
            with database.engine.connect() as connection:
                for source in PERSONAL_DATA:
                    parts[source.name].append(source.export(connection, user_id, tenant_id))
                authored += document_store.authored_versions(connection, user_id, tenant_id)
        held = {name: _merged(found) for name, found in parts.items()}
        about = log.list(subject=user_id, tenant=tenant_id, limit=100_000)
        by = log.list(actor=user_id, tenant=tenant_id, limit=100_000)
        log.record("gdpr.export", target=target, tenant=tenant_id, subject=user_id)
    return {
        "user": user_id,
        "tenant": tenant_id,
        "exported_at": datetime.now(UTC).isoformat(),
        "pseudonym": log.pseudonym(user_id),
        **held,
        "versions_authored": authored,
        "audit": {
            "about": [e.as_dict() for e in about if e.subject == user_id],
            "by": [e.as_dict() for e in by if e.actor == user_id],
        },
    }


@gdpr_compliant(
    purpose="Erase a person's data on request (GDPR article 17)",
    categories=("user id", "preferences"),
    personal_args=("user_id",),
)
def erase_user(runtime: ConfigRuntime, user_id: str, tenant_id: str | None = None) -> Erasure:
    """Delete what is held about ``user_id`` and the mapping of their pseudonym.

    Their documents and versions go; versions they wrote elsewhere are attributed to
    their pseudonym; the audit entries stay, hash chain intact, naming only the
    pseudonym, whose identity is then unknown. Recorded as ``gdpr.erase``.

    Each database is erased in one transaction, with its ``gdpr.erase`` entry: the
    strictly isolated tenants' own first (an entry only where something was held),
    the shared one last. The mapping of the pseudonym goes from every database when
    the person is erased everywhere; erased within one tenant, it goes from that
    tenant's own database only (the shared one's also names them in other tenants).
    """
    log = AuditLog.of(runtime)
    target = f"user:{tenant_id or '*'}"
    pseudonym = log.pseudonym(user_id)
    removed: dict[str, int] = {}
    with log.failures("gdpr.erase", target=target, tenant=tenant_id):
        draft = log.draft("gdpr.erase", target=target, tenant=tenant_id, subject=user_id)
        # The entry names the person by pseudonym only; its mapping is what is erased.
        draft = replace(
            draft, identities={p: i for p, i in draft.identities.items() if i != user_id}
        )
        # The shared database last: until it is done the person can still be found.
        for label, database in reversed(_databases(runtime, tenant_id)):
            with write_transaction(database.engine) as connection:
                here: dict[str, int] = {}
                for source in PERSONAL_DATA:
                    here.update(source.erase(connection, user_id, tenant_id))
                here["versions_reattributed"] = document_store.replace_author(
                    connection, user_id, pseudonym, tenant_id
                )
                here["pseudonyms"] = (
                    audit_store.forget_pseudonym(connection, pseudonym)
                    if tenant_id is None or label is not None
                    else 0
                )
                if label is None or tenant_id is not None or any(here.values()):
                    entry = draft if label is None else replace(draft, tenant_id=label)
                    counts = {k: v for k, v in here.items() if k != "pseudonyms"}
                    audit_store.append(connection, entry.with_diff(removed=counts))
            for kind, count in here.items():
                removed[kind] = removed.get(kind, 0) + count
    # Views of the user cached here go with the documents (other instances: see above).
    for tenant in (
        [tenant_id] if tenant_id else [t.id for t in TenantStore(runtime.database.engine).all()]
    ):
        runtime.forget_tenant(tenant)
    return Erasure(user_id, pseudonym, removed)
