"""The audit trail: who did what to which tenant, when, with what outcome — tamper-evident.

```python
from slack_tools.configs.security.audit import AuditLog, audit_action

AuditLog.of(runtime).record("token.issue", target="role:operator", tenant="acme")

@audit_action("config.update")
def update_configuration(user_id: str, changes: dict): ...
```

Entries are hash-chained (see :mod:`slack_tools.storage.audit`). People appear only
as keyed pseudonyms — HMAC-SHA256 under a random key stored wrapped by the master
key — whose mapping to the identity sits in an erasable table: erasing a person
deletes the mapping, and the chain, which never held the identity, still verifies.
The key is random and wrapped rather than derived from a master key, so rotating
the master key re-wraps it and pseudonyms stay the same.

A strictly isolated tenant's changes are audited in its own database, in the
transaction that makes them, so the trail is in several databases: the shared one
and each strict tenant's. Reading and verifying cover them all; a chain of a
strict tenant's database is named ``<tenant>:<chain>`` (``acme:global``), so it is
never mistaken for the shared database's chain of the same name. The pseudonym key
is the shared database's; the mapping of a pseudonym to its identity is stored
beside the entry that introduced it, and read from there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import heapq
import hmac
import inspect
import itertools
import re
import secrets
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import SQLAlchemyError

from slack_tools.configs.security.actors import (
    SYSTEM,
    Actor,
    acting_as,
    current_actor,
    local_admin,
)
from slack_tools.configs.security.encryption import ValueCipher, is_encrypted
from slack_tools.errors import SecretError, SlackToolsError, StorageError
from slack_tools.storage import audit as store
from slack_tools.storage import delivery as outbox
from slack_tools.storage.audit import GLOBAL_CHAIN, Draft, Filters, Outcome, StoredEntry
from slack_tools.storage.database import Database, describe, write_transaction
from slack_tools.storage.scope import ALL_TENANTS, TenantScope, scoped
from slack_tools.storage.tables import deliveries

if TYPE_CHECKING:
    from slack_tools.configs.runtime import ConfigRuntime

__all__ = [
    "GLOBAL_CHAIN",
    "AmbiguousDeadLetterError",
    "AuditEntry",
    "AuditLog",
    "Breach",
    "Outcome",
    "Verification",
    "acting",
    "audit_action",
    "correlation_id",
    "default_audit_log",
    "list_dead_letters",
    "qualified_chain",
    "redact",
    "replay_dead_letters",
]

_log = structlog.get_logger(__name__)
MASK = "********"
PSEUDONYM_KEY = "pseudonym"
_KEY_CONTEXT = "audit/pseudonym-key"
_PLAIN = "plain:"
# Names whose values are secrets wherever they appear in a diff.
_SECRET_NAME = re.compile(
    r"(token|secret|password|passwd|api_?key|private|credential|signing|master_?keys?)",
    re.IGNORECASE,
)
_SECRET_SHAPE = re.compile(
    r"(xox[abposre]-[A-Za-z0-9-]{6,}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|stk_[A-Za-z0-9_-]{16,}|enc:[vt]1:\S+)"
)


def redact(value: Any, *, name: str = "") -> Any:
    """A copy of ``value`` with secrets masked: values under secret-like names, and
    anything shaped like a token, a JWT, an API key or an encrypted value."""
    if isinstance(value, Mapping):
        return {str(k): redact(v, name=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, name=name) for v in value]
    if value is not None and name and _SECRET_NAME.search(name):
        return MASK
    if hasattr(value, "get_secret_value"):  # pydantic SecretStr / SecretBytes
        return MASK
    if isinstance(value, str):
        return MASK if is_encrypted(value) else _SECRET_SHAPE.sub(MASK, value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return _SECRET_SHAPE.sub(MASK, str(value))


def correlation_id() -> str:
    """The correlation id of the work in progress, if the logging context holds one."""
    bound = structlog.contextvars.get_contextvars()
    for name in ("correlation_id", "request_id", "trace_id"):
        if bound.get(name):
            return str(bound[name])[:128]
    return ""


def acting() -> Actor:
    """Who is acting: the current actor, else the process's local administrator."""
    found = current_actor()
    if found is not None:
        return found
    try:
        return local_admin()
    except (KeyError, OSError):  # no user name in this environment (some containers)
        return Actor("unknown", roles=frozenset({"admin"}), all_tenants=True, kind="local")


@dataclass(frozen=True)
class AuditEntry:
    """An entry as people read it: pseudonyms resolved when the identity is still known."""

    seq: int
    chain: str
    at: datetime
    actor: str
    actor_kind: str
    action: str
    target: str
    tenant: str
    subject: str
    outcome: str
    error: str
    correlation_id: str
    diff: Mapping[str, Any]
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "chain": self.chain,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "actor_kind": self.actor_kind,
            "action": self.action,
            "target": self.target,
            "tenant": self.tenant,
            "subject": self.subject,
            "outcome": self.outcome,
            "error": self.error,
            "correlation_id": self.correlation_id,
            "diff": dict(self.diff),
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Breach:
    """The first entry where a chain stops verifying, and why."""

    chain: str
    seq: int
    reason: str  # modified, deleted, reordered, truncated, unreadable
    detail: str

    def format(self) -> str:
        return f"chain {self.chain}: entry {self.seq} {self.reason}: {self.detail}"


@dataclass(frozen=True)
class Verification:
    """What ``verify`` found: entries checked per chain, heads, and the first breach."""

    checked: Mapping[str, int]
    heads: Mapping[str, str]
    breach: Breach | None

    @property
    def ok(self) -> bool:
        return self.breach is None


def _classify(
    entries: Sequence[StoredEntry], known_length: int, chain: str
) -> tuple[Breach | None, int]:
    """Walk a chain in order; the first breach (and how many entries were checked)."""
    hashes = {entry.hash for entry in entries}
    previous: StoredEntry | None = None
    for index, entry in enumerate(entries):
        expected = index + 1
        if entry.seq != expected:
            if entry.seq > expected:
                missing = (
                    f"{expected}" if entry.seq == expected + 1 else f"{expected} to {entry.seq - 1}"
                )
                return Breach(chain, expected, "deleted", f"entry {missing} is missing"), index
            return Breach(chain, entry.seq, "modified", "its position appears twice"), index
        if store.entry_hash(entry.hashed_fields()) != entry.hash:
            return Breach(
                chain, entry.seq, "modified", "its content no longer matches its hash"
            ), index
        expected_prev = previous.hash if previous else store.GENESIS
        if entry.prev_hash != expected_prev:
            if entry.prev_hash in hashes and entry.prev_hash != entry.hash:
                return Breach(
                    chain,
                    entry.seq,
                    "reordered",
                    "it follows another entry than the one it was written after",
                ), index
            if len(entries) < known_length:
                return Breach(
                    chain, entry.seq, "deleted", "the entry written before it is missing"
                ), index
            assert previous is not None  # the first entry's link is to the genesis value
            return Breach(
                chain, previous.seq, "modified", "rewritten: the next entry no longer links to it"
            ), index
        previous = entry
    if len(entries) < known_length:
        last = entries[-1].seq if entries else 0
        return Breach(
            chain,
            last + 1,
            "truncated",
            f"the chain ends at entry {last}, its head records {known_length}",
        ), len(entries)
    if previous is not None and len(entries) > known_length:
        return Breach(
            chain, known_length + 1, "modified", "entries past the recorded head were added"
        ), len(entries)
    return None, len(entries)


def qualified_chain(tenant: str | None, chain: str) -> str:
    """A chain's name across databases: ``acme:global`` in strict tenant acme's own."""
    return chain if tenant is None else f"{tenant}:{chain}"


# The strictly isolated tenants (each with a database of its own).
StrictIds = Callable[[], Iterable[str]]
# The database holding a tenant's data.
DatabaseFor = Callable[[str], Database]


_by_runtime: weakref.WeakKeyDictionary[Any, AuditLog] = weakref.WeakKeyDictionary()
_by_runtime_lock = threading.Lock()


class AuditLog:
    """Record, list and verify audit entries in a database (and strict tenants' own).

    ``database`` is the shared database: the pseudonym key and entries written
    without a connection go there. ``strict_ids`` (the tenants with a database of
    their own) and ``database_for`` make reading, verifying and tenant-scoped work
    cover every database; without them there is only ``database``.
    """

    def __init__(
        self,
        database: Database,
        cipher: Callable[[], ValueCipher | None] | ValueCipher | None = None,
        *,
        strict_ids: StrictIds | None = None,
        database_for: DatabaseFor | None = None,
    ) -> None:
        self.database = database
        self._cipher: Callable[[], ValueCipher | None] = (
            cipher if callable(cipher) else (lambda: cipher)
        )
        self._strict_ids = strict_ids
        self._database_for = database_for
        self._key: bytes | None = None
        self._key_lock = threading.Lock()

    @classmethod
    def of(cls, runtime: ConfigRuntime) -> AuditLog:
        """The audit log of a runtime's databases (one per runtime, its key read once)."""
        with _by_runtime_lock:
            found = _by_runtime.get(runtime)
            if found is None or found.database is not runtime.database:
                found = cls(
                    runtime.database,
                    lambda: runtime.snapshot.loaded.cipher,
                    strict_ids=lambda: runtime.databases.strict_ids(),  # noqa: PLW0108 - read late
                    database_for=runtime.database_for,
                )
                _by_runtime[runtime] = found
            return found

    # --- where entries are -----------------------------------------------------------------

    def strict_ids(self) -> list[str]:
        """The strictly isolated tenants, each with a database of its own."""
        return [] if self._strict_ids is None else sorted(self._strict_ids())

    def labelled(
        self, unreachable: list[tuple[str, str]] | None = None
    ) -> list[tuple[str | None, Database]]:
        """Every database holding entries, with its strict tenant (None: the shared one).

        Given ``unreachable``, a strict tenant's database that cannot be opened is left
        out and added to it (tenant, reason); without, that raises.
        """
        found: list[tuple[str | None, Database]] = [(None, self.database)]
        for tenant in self.strict_ids():
            try:
                found.append((tenant, self.database_for(tenant)))
            except StorageError as exc:
                if unreachable is None:
                    raise
                unreachable.append((tenant, str(exc)))
        return found

    def database_for(self, tenant: str) -> Database:
        """The database holding ``tenant``'s data (and the entries of its changes)."""
        return self.database if self._database_for is None else self._database_for(tenant)

    def _reading(self, tenant: str | None) -> list[tuple[str | None, Database]]:
        """Where entries about ``tenant`` (None: anyone) are: its database and the shared one."""
        if tenant is None:
            unreachable: list[tuple[str, str]] = []
            found = self.labelled(unreachable)
            for tenant_id, reason in unreachable:  # the others' entries are still listed
                _log.warning("audit.database_unreachable", tenant=tenant_id, error=reason)
            return found
        own = self.database_for(tenant)
        if own is self.database:
            return [(None, self.database)]
        return [(None, self.database), (tenant, own)]

    # --- pseudonyms ----------------------------------------------------------------------

    def _pseudonym_key(self) -> bytes:
        with self._key_lock:
            if self._key is None:
                self._key = self._load_key()
            return self._key

    def _load_key(self) -> bytes:
        engine = self.database.engine
        try:
            with engine.connect() as connection:
                stored = store.stored_key(connection, PSEUDONYM_KEY)
            if stored is None:
                made = self._seal(secrets.token_bytes(32))
                with write_transaction(engine) as connection:
                    stored = store.keep_key(connection, PSEUDONYM_KEY, made)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read the audit key: {describe(exc)}") from None
        return self._unseal(stored)

    def _seal(self, key: bytes) -> str:
        encoded = base64.b64encode(key).decode("ascii")
        cipher = self._cipher()
        # Without a master key the key is stored as it is (dev): pseudonyms still hide
        # identities from readers of the trail, not from readers of the database.
        return _PLAIN + encoded if cipher is None else cipher.encrypt(encoded, _KEY_CONTEXT)

    def _unseal(self, stored: str) -> bytes:
        if stored.startswith(_PLAIN):
            return base64.b64decode(stored.removeprefix(_PLAIN))
        cipher = self._cipher()
        if cipher is None:
            raise SecretError(
                "the audit pseudonym key is wrapped by a master key and none is configured "
                "(SLACK_TOOLS_MASTER_KEYS)"
            )
        return base64.b64decode(cipher.decrypt(stored, _KEY_CONTEXT))

    def rewrap_key(self, cipher: ValueCipher) -> bool:
        """Wrap the pseudonym key with ``cipher``'s active key; whether it changed."""
        with write_transaction(self.database.engine) as connection:
            stored = store.stored_key(connection, PSEUDONYM_KEY)
            if stored is None:
                return False
            if stored.startswith(_PLAIN):
                renewed = cipher.encrypt(stored.removeprefix(_PLAIN), _KEY_CONTEXT)
            else:
                renewed = cipher.reencrypt(stored, _KEY_CONTEXT)
            if renewed == stored:
                return False
            store.replace_key(connection, PSEUDONYM_KEY, renewed)
            return True

    def pseudonym(self, identity: str) -> str:
        """The keyed pseudonym that stands for a person in the trail."""
        digest = hmac.new(self._pseudonym_key(), identity.encode("utf-8"), "sha256").hexdigest()
        return f"p_{digest[:32]}"

    # --- recording -----------------------------------------------------------------------

    def draft(
        self,
        action: str,
        *,
        target: str = "",
        tenant: str | None = None,
        subject: str | None = None,
        outcome: Outcome = Outcome.SUCCESS,
        error: BaseException | str | None = None,
        diff: Mapping[str, Any] | None = None,
        actor: Actor | None = None,
    ) -> Draft:
        """An entry ready to append in a transaction of the caller's (see ``record``).

        ``subject``: the person the action is about (a user id), stored as a pseudonym.
        ``error``: only its class name is kept, never its message (it may hold a secret).
        """
        who = actor or acting()
        identities: dict[str, str] = {}
        if who.kind == SYSTEM.kind:
            actor_name = who.id
        else:
            actor_name = self.pseudonym(who.id)
            identities[actor_name] = who.id
        subject_name = ""
        if subject:
            subject_name = self.pseudonym(subject)
            identities[subject_name] = subject
        if isinstance(error, BaseException):
            error = type(error).__name__
        return Draft(
            action=action,
            actor=actor_name,
            actor_kind=who.kind,
            target=str(redact(target))[:300],
            tenant_id=tenant or "",
            subject=subject_name,
            outcome=Outcome(outcome),
            error=(error or "")[:200],
            correlation_id=correlation_id(),
            diff=redact(dict(diff or {})),
            identities=identities,
        )

    def append(self, connection: sa.Connection, draft: Draft) -> StoredEntry:
        """Append a draft in the caller's write transaction."""
        return store.append(connection, draft)

    def record(
        self,
        action: str,
        *,
        target: str = "",
        tenant: str | None = None,
        subject: str | None = None,
        outcome: Outcome | str = Outcome.SUCCESS,
        error: BaseException | str | None = None,
        diff: Mapping[str, Any] | None = None,
        actor: Actor | None = None,
        connection: sa.Connection | None = None,
    ) -> StoredEntry:
        """Append one entry: in ``connection``'s transaction if given, else in its own.

        Give the connection of the transaction that makes the change, so the change
        and its entry commit together (or not at all).
        """
        draft = self.draft(
            action,
            target=target,
            tenant=tenant,
            subject=subject,
            outcome=Outcome(outcome),
            error=error,
            diff=diff,
            actor=actor,
        )
        if connection is not None:
            return store.append(connection, draft)
        database = self.database
        if tenant:  # with the tenant's other entries: in its own database if it has one
            with contextlib.suppress(StorageError):
                database = self.database_for(tenant)
        try:
            with write_transaction(database.engine) as own:
                return store.append(own, draft)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot write the audit entry: {describe(exc)}") from None

    @contextlib.contextmanager
    def failures(
        self,
        action: str,
        *,
        target: str = "",
        tenant: str | None = None,
        subject: str | None = None,
    ) -> Iterator[None]:
        """Record a failure entry if the block raises (successes are recorded with the change)."""
        try:
            yield
        except Exception as exc:
            with contextlib.suppress(Exception):  # the original error matters more
                self.record(
                    action,
                    target=target,
                    tenant=tenant,
                    subject=subject,
                    outcome=Outcome.FAILURE,
                    error=exc,
                )
            raise

    # --- reading -------------------------------------------------------------------------

    def entries(
        self,
        *,
        tenant: str | None = None,
        since: datetime | None = None,
        action: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Entries newest first, filtered; ``actor``/``subject`` are identities (or pseudonyms).

        Given both ``actor`` and ``subject``, entries by either are listed.
        """
        filters = Filters(
            tenant_id=tenant,
            since=since,
            action=action,
            actors=None if actor is None else self._names(actor),
            subjects=None if subject is None else self._names(subject),
            limit=limit,
        )
        found: list[list[AuditEntry]] = []
        try:
            for label, database in self._reading(tenant):
                with database.engine.connect() as connection:
                    rows = store.entries(connection, filters)
                    # A pseudonym's identity is stored beside the entry that introduced it.
                    known = store.identities(
                        connection,
                        [r.actor for r in rows] + [r.subject for r in rows if r.subject],
                    )
                found.append([self._resolved(row, known, label) for row in rows])
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read the audit trail: {describe(exc)}") from None
        # Each database's entries come newest first; across databases, by time.
        merged = heapq.merge(*found, key=lambda entry: entry.at, reverse=True)
        return list(itertools.islice(merged, limit))

    def _names(self, person: str) -> list[str]:
        return [person] if person.startswith("p_") else [person, self.pseudonym(person)]

    @staticmethod
    def _resolved(row: StoredEntry, known: Mapping[str, str], label: str | None) -> AuditEntry:
        return AuditEntry(
            seq=row.seq,
            chain=qualified_chain(label, row.chain),
            at=row.at,
            actor=known.get(row.actor, row.actor),
            actor_kind=row.actor_kind,
            action=row.action,
            target=row.target,
            tenant=row.tenant_id,
            subject=known.get(row.subject, row.subject),
            outcome=row.outcome,
            error=row.error,
            correlation_id=row.correlation_id,
            diff=row.diff,
            hash=row.hash,
        )

    def verify(self, chain: str | None = None) -> Verification:
        """Check every chain (or one): each entry's hash, its link, positions and the head.

        Every database is checked, the shared one first; a strict tenant's chains are
        named ``<tenant>:<chain>`` (and ``chain`` may name one so).
        """
        checked: dict[str, int] = {}
        heads: dict[str, str] = {}
        unreachable: list[tuple[str, str]] = []
        targets = self.labelled(unreachable)
        if chain is not None:
            targets = self._chain_database(chain, targets)
            wanted = chain.partition(":")[0]
            unreachable = [(t, reason) for t, reason in unreachable if t == wanted]
        for label, database in targets:
            only = None
            if chain is not None:
                only = chain if label is None else chain.removeprefix(f"{label}:")
            breach = self._verify_database(database, label, only, checked, heads)
            if breach is not None:
                return Verification(checked, heads, breach)
        if unreachable:  # what could not be read is not verified: say whose
            tenant, reason = unreachable[0]
            return Verification(checked, heads, Breach(f"{tenant}:*", 0, "unreadable", reason))
        return Verification(checked, heads, None)

    @staticmethod
    def _chain_database(
        chain: str, labelled: list[tuple[str | None, Database]]
    ) -> list[tuple[str | None, Database]]:
        """The database of ``chain`` (``acme:global``: strict tenant acme's own)."""
        tenant, found, _ = chain.partition(":")
        if found:
            for label, database in labelled:
                if label == tenant:
                    return [(label, database)]
        return [labelled[0]]

    @staticmethod
    def _verify_database(
        database: Database,
        label: str | None,
        only: str | None,
        checked: dict[str, int],
        heads_found: dict[str, str],
    ) -> Breach | None:
        """Verify the chains of one database into ``checked``/``heads_found``; the first breach."""
        engine = database.engine
        try:
            with engine.connect() as connection:
                heads = {h.chain: h for h in store.heads(connection)}
                names = sorted(set(heads) | set(store.chains_in_entries(connection)))
            heads_found.update({qualified_chain(label, k): v.head_hash for k, v in heads.items()})
            if only is not None:
                names = [only]
            for name in names:
                shown = qualified_chain(label, name)
                entries = list(store.chain_entries(engine, name))
                head = heads.get(name)
                known = head.length if head else 0
                breach, count = _classify(entries, known, shown)
                checked[shown] = count
                if (
                    breach is None
                    and head is not None
                    and entries
                    and entries[-1].hash != head.head_hash
                ):
                    breach = Breach(
                        shown, entries[-1].seq, "modified", "the head records another last entry"
                    )
                if breach is not None:
                    return breach
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read the audit trail: {describe(exc)}") from None
        return None

    # The specification's name; defined last so the class body's annotations keep the builtin.
    list = entries


def _dead_letter_databases(
    log: AuditLog, scope: TenantScope
) -> list[tuple[str | None, Callable[[], Database], TenantScope]]:
    """Where ``scope``'s dead letters are: each database (opened when called) with the
    scope to query it with."""
    if scope is not ALL_TENANTS:
        database = log.database_for(scope)
        return [(None if database is log.database else scope, lambda: database, scope)]
    return [(None, lambda: log.database, ALL_TENANTS)] + [
        (tenant, functools.partial(log.database_for, tenant), tenant) for tenant in log.strict_ids()
    ]


def list_dead_letters(
    log: AuditLog,
    scope: TenantScope,
    limit: int = 1000,
    *,
    unreachable: list[str] | None = None,
) -> list[outbox.DeadLetter]:
    """Dead letters of one tenant (read in its database) or of every tenant (in every
    database), newest first. Ids are per database: a strict tenant's may repeat another's.

    Given ``unreachable``, a strict tenant's database that cannot be read while listing
    every tenant's is added to it instead of failing the whole list.
    """
    found: list[list[outbox.DeadLetter]] = []
    for label, database, query in _dead_letter_databases(log, scope):
        try:
            with database().engine.connect() as connection:
                found.append(outbox.dead_letters(connection, query, limit))
        except (SQLAlchemyError, StorageError) as exc:
            if unreachable is not None and label is not None and scope is ALL_TENANTS:
                unreachable.append(label)
                continue
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"cannot read the dead letters: {describe(exc)}") from None
    merged = heapq.merge(*found, key=lambda letter: letter.updated_at, reverse=True)
    return list(itertools.islice(merged, limit))


class AmbiguousDeadLetterError(SlackToolsError):
    """Dead letter ids found in more than one database: the tenant must be named."""


def _holding(
    targets: list[tuple[str | None, Callable[[], Database], TenantScope]], ids: Sequence[int]
) -> list[tuple[str | None, Callable[[], Database], TenantScope]]:
    """The databases holding one of ``ids`` as a dead letter; refuses an id found in two."""
    seen: dict[int, str] = {}
    holding = []
    for label, database, query in targets:
        with database().engine.connect() as connection:
            here = set(
                connection.execute(
                    sa.select(deliveries.c.id).where(
                        deliveries.c.state == outbox.DeliveryState.DEAD.value,
                        deliveries.c.id.in_(list(ids)),
                        scoped(deliveries.c.tenant_id, query),
                    )
                ).scalars()
            )
        for letter in sorted(here):
            if letter in seen:
                raise AmbiguousDeadLetterError(
                    f"dead letter {letter} is both {seen[letter]}'s and "
                    f"{label or 'the shared database'}'s: name the tenant"
                )
            seen[letter] = label or "the shared database"
        if here:
            holding.append((label, database, query))
    return holding


def replay_dead_letters(
    log: AuditLog, scope: TenantScope, *, ids: Sequence[int] | None = None
) -> int:
    """Queue dead letters again and audit it, in one transaction per database; how many.

    The one entry point for replays (CLI and admin API), so none goes unrecorded. A
    tenant's dead letters are replayed in its database (its own under strict
    isolation), with the audit entry; replaying every tenant's does each database in
    turn (a strict tenant's entry only where something was queued). Dead letter ids
    are per database: ids without a tenant are looked up in every database, and an
    id found in two is refused (:class:`AmbiguousDeadLetterError`) before anything is done.
    """
    tenant = None if scope is ALL_TENANTS else str(scope)
    target = "deadletters:" + ("all" if tenant is None else tenant)
    with log.failures("deadletters.replay", target=target, tenant=tenant):
        targets = _dead_letter_databases(log, scope)
        if ids is not None and len(targets) > 1:
            targets = _holding(targets, ids) or targets[:1]
        total = 0
        for label, database, query in targets:
            entry = log.draft(
                "deadletters.replay",
                target=target,
                tenant=tenant or label,
                diff={"ids": list(ids)} if ids is not None else {},
            )
            with write_transaction(database().engine) as connection:
                if label is not None and scope is ALL_TENANTS:
                    replayed = outbox.replay(connection, query, now=datetime.now(UTC), ids=ids)
                    if replayed:
                        log.append(connection, entry.with_diff(replayed=replayed))
                else:
                    replayed = outbox.replay(
                        connection, query, now=datetime.now(UTC), ids=ids, audit_entry=entry
                    )
            total += replayed
        return total


def default_audit_log() -> AuditLog:
    """The audit log of the process's default runtime (as ``TenantManager()`` uses it)."""
    from slack_tools.configs import default_runtime  # noqa: PLC0415 - avoids a cycle

    return AuditLog.of(default_runtime())


# --- the specification's decorator --------------------------------------------------------

P = ParamSpec("P")
R = TypeVar("R")

_TENANT_ARGS = ("tenant_id", "tenant")
_SUBJECT_ARGS = ("user_id", "slack_user_id", "username", "email")
_DIFF_ARGS = ("changes", "config", "patch", "diff")


def _facts(signature: inspect.Signature, args: Any, kwargs: Any) -> dict[str, Any]:
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError:
        return {}
    named = bound.arguments
    tenant = next((str(named[n]) for n in _TENANT_ARGS if named.get(n)), None)
    subject = next((str(named[n]) for n in _SUBJECT_ARGS if named.get(n)), None)
    changes = next((named[n] for n in _DIFF_ARGS if isinstance(named.get(n), Mapping)), None)
    target = f"tenant:{tenant}" if tenant else ""
    return {
        "tenant": tenant,
        "subject": subject,
        "target": target,
        "diff": {"changes": changes} if changes is not None else {},
    }


def audit_action(
    action: str, *, log: AuditLog | Callable[[], AuditLog] | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record each call of the decorated function as ``action``, with its outcome.

    Works on plain and ``async`` functions. The tenant comes from a ``tenant_id``
    argument, the person concerned from ``user_id`` (pseudonymised), the diff from a
    ``changes`` mapping (secrets masked). A failure is recorded with the error's
    class, never its message, and the error is raised again. The entry goes to
    ``log`` (an :class:`AuditLog` or a function returning one), else to the default
    runtime's.
    """

    def resolve() -> AuditLog:
        if log is None:
            return default_audit_log()
        return log if isinstance(log, AuditLog) else log()

    def write(facts: Mapping[str, Any], error: BaseException | None) -> None:
        resolve().record(
            action,
            outcome=Outcome.FAILURE if error else Outcome.SUCCESS,
            error=error,
            **facts,
        )

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(function)

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                facts = _facts(signature, args, kwargs)
                actor = acting()  # read here: to_thread copies the context anyway
                try:
                    result = await function(*args, **kwargs)
                except Exception as exc:
                    await asyncio.to_thread(_write_as, actor, write, facts, exc)
                    raise
                await asyncio.to_thread(_write_as, actor, write, facts, None)
                return result

            return cast("Callable[P, R]", run_async)

        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            facts = _facts(signature, args, kwargs)
            try:
                result = function(*args, **kwargs)
            except Exception as exc:
                write(facts, exc)
                raise
            write(facts, None)
            return result

        return run

    return decorate


def _write_as(
    actor: Actor,
    write: Callable[[Mapping[str, Any], BaseException | None], None],
    facts: Mapping[str, Any],
    error: BaseException | None,
) -> None:
    with acting_as(actor):
        write(facts, error)
