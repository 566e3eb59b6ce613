"""Who is acting: the caller of the current operation, carried in a context variable.

Authentication sets it (a verified token on the admin API, the operating-system
user on the CLI, the service itself for background jobs); authorisation checks
it and the audit trail records it. A context variable follows the call through
``await`` and into tasks started from it, so nothing has to thread an actor
argument through every layer.
"""

from __future__ import annotations

import contextvars
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Actor:
    """A caller: ``id`` names them (a token subject, an OS user, ``system``).

    ``tenants`` lists the tenants they may act for; ``all_tenants`` lifts that limit
    (platform administrators, the local CLI administrator, the service itself).
    ``kind`` says how they were authenticated: ``token``, ``local`` or ``system``.
    ``permissions`` are what the roles grant under the configured role table; ``None``
    means the built-in roles decide (see ``rbac``).
    """

    id: str
    roles: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()
    all_tenants: bool = False
    kind: str = "token"
    claims: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    permissions: frozenset[str] | None = None

    def may_act_for(self, tenant_id: str) -> bool:
        return self.all_tenants or tenant_id in self.tenants


# The service's own work (retention, dispatch, reloads) acts as this.
SYSTEM = Actor("system", roles=frozenset({"admin"}), all_tenants=True, kind="system")


def local_admin(user: str | None = None) -> Actor:
    """The person at the CLI: local administrator, named by ``--author`` or the OS user."""
    return Actor(
        user or getpass.getuser(), roles=frozenset({"admin"}), all_tenants=True, kind="local"
    )


_current: contextvars.ContextVar[Actor | None] = contextvars.ContextVar(
    "slack_tools_actor", default=None
)


def current_actor() -> Actor | None:
    """The actor of the operation in progress, or ``None`` when nobody said."""
    return _current.get()


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    """Run the block as ``actor``; the previous actor comes back afterwards."""
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)
