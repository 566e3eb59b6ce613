"""Which tenants a query may see: one, or all of them when an operator asks so by name.

Logical isolation keeps every tenant's rows in shared tables, told apart by
``tenant_id``. A query over tenant data takes a scope, and there is no default:
``None`` or an empty id is refused rather than read as "every tenant", so a
forgotten argument cannot leak one tenant's rows to another. Operator views
across tenants say so with :data:`ALL_TENANTS`.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Literal

import sqlalchemy as sa


class _AllTenants(Enum):
    ALL_TENANTS = "all tenants"


ALL_TENANTS: Final = _AllTenants.ALL_TENANTS
TenantScope = str | Literal[_AllTenants.ALL_TENANTS]


def scoped(column: sa.ColumnElement[str], scope: TenantScope) -> sa.ColumnElement[bool]:
    """The condition limiting ``column`` (a ``tenant_id``) to ``scope``."""
    if scope is ALL_TENANTS:
        return sa.true()
    if not isinstance(scope, str) or not scope:
        raise ValueError(
            f"a tenant scope is required, got {scope!r}: pass a tenant id, or ALL_TENANTS "
            "for a view across tenants"
        )
    return column == scope
