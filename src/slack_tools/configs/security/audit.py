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
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hmac
import inspect
import re
import secrets
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from slack_tools.errors import SecretError, StorageError
from slack_tools.storage import audit as store
from slack_tools.storage import delivery as outbox
from slack_tools.storage.audit import GLOBAL_CHAIN, Draft, Filters, Outcome, StoredEntry
from slack_tools.storage.database import Database, describe, write_transaction
from slack_tools.storage.scope import ALL_TENANTS, TenantScope

if TYPE_CHECKING:
    from slack_tools.configs.runtime import ConfigRuntime

__all__ = [
    "GLOBAL_CHAIN",
    "AuditEntry",
    "AuditLog",
    "Breach",
    "Outcome",
    "Verification",
    "acting",
    "audit_action",
    "correlation_id",
    "default_audit_log",
    "redact",
    "replay_dead_letters",
]

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
    reason: str  # modified, deleted, reordered, truncated
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


_by_runtime: weakref.WeakKeyDictionary[Any, AuditLog] = weakref.WeakKeyDictionary()
_by_runtime_lock = threading.Lock()


class AuditLog:
    """Record, list and verify audit entries in a database."""

    def __init__(
        self,
        database: Database,
        cipher: Callable[[], ValueCipher | None] | ValueCipher | None = None,
    ) -> None:
        self.database = database
        self._cipher: Callable[[], ValueCipher | None] = (
            cipher if callable(cipher) else (lambda: cipher)
        )
        self._key: bytes | None = None
        self._key_lock = threading.Lock()

    @classmethod
    def of(cls, runtime: ConfigRuntime) -> AuditLog:
        """The audit log of a runtime's database (one per runtime, its key read once)."""
        with _by_runtime_lock:
            found = _by_runtime.get(runtime)
            if found is None or found.database is not runtime.database:
                found = cls(runtime.database, lambda: runtime.snapshot.loaded.cipher)
                _by_runtime[runtime] = found
            return found

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
        try:
            with write_transaction(self.database.engine) as own:
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
        try:
            with self.database.engine.connect() as connection:
                rows = store.entries(connection, filters)
                known = store.identities(
                    connection, [r.actor for r in rows] + [r.subject for r in rows if r.subject]
                )
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read the audit trail: {describe(exc)}") from None
        return [self._resolved(row, known) for row in rows]

    def _names(self, person: str) -> list[str]:
        return [person] if person.startswith("p_") else [person, self.pseudonym(person)]

    @staticmethod
    def _resolved(row: StoredEntry, known: Mapping[str, str]) -> AuditEntry:
        return AuditEntry(
            seq=row.seq,
            chain=row.chain,
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
        """Check every chain (or one): each entry's hash, its link, positions and the head."""
        engine = self.database.engine
        try:
            with engine.connect() as connection:
                heads = {h.chain: h for h in store.heads(connection)}
                names = sorted(set(heads) | set(store.chains_in_entries(connection)))
            if chain is not None:
                names = [chain]
            checked: dict[str, int] = {}
            for name in names:
                entries = list(store.chain_entries(engine, name))
                head = heads.get(name)
                known = head.length if head else 0
                breach, count = _classify(entries, known, name)
                checked[name] = count
                if (
                    breach is None
                    and head is not None
                    and entries
                    and entries[-1].hash != head.head_hash
                ):
                    breach = Breach(
                        name, entries[-1].seq, "modified", "the head records another last entry"
                    )
                if breach is not None:
                    return Verification(checked, {k: v.head_hash for k, v in heads.items()}, breach)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read the audit trail: {describe(exc)}") from None
        return Verification(checked, {k: v.head_hash for k, v in heads.items()}, None)

    # The specification's name; defined last so the class body's annotations keep the builtin.
    list = entries


def replay_dead_letters(
    log: AuditLog, scope: TenantScope, *, ids: Sequence[int] | None = None
) -> int:
    """Queue dead letters again and audit it, in one transaction; how many were queued.

    The one entry point for replays (CLI and admin API), so none goes unrecorded.
    """
    tenant = None if scope is ALL_TENANTS else str(scope)
    target = "deadletters:" + ("all" if tenant is None else tenant)
    with log.failures("deadletters.replay", target=target, tenant=tenant):
        entry = log.draft(
            "deadletters.replay",
            target=target,
            tenant=tenant,
            diff={"ids": list(ids)} if ids is not None else {},
        )
        with write_transaction(log.database.engine) as connection:
            return outbox.replay(
                connection, scope, now=datetime.now(UTC), ids=ids, audit_entry=entry
            )


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
