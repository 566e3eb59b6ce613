"""TenantStore against real databases: tenants, their status, and API keys looked up by digest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from slack_tools.errors import ConflictError, NotFoundError
from slack_tools.storage import create_engine, upgrade
from slack_tools.storage.tenants import (
    ApiKeyRecord,
    TenantStatus,
    TenantStore,
    check_tenant_id,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def digest(key: str) -> str:
    """The stored form of an API key (what the store is given; the key itself never is)."""
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database on each backend, disposed afterwards."""
    engine = create_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> TenantStore:
    """A store with two tenants, acme and globex."""
    store = TenantStore(engine)
    store.create("acme", "Acme Corp")
    store.create("globex", "Globex")
    return store


def add(store: TenantStore, tenant: str, key: str, label: str = "ci") -> ApiKeyRecord:
    return store.add_key(tenant, digest=digest(key), prefix=key[:8], label=label)


# --- tenants ----------------------------------------------------------------------------


def test_create_stores_an_active_tenant_read_back_by_get_and_all(store: TenantStore) -> None:
    """A created tenant is active, read back by get, and listed by all in id order."""
    created = store.create("initech", "Initech")

    assert (created.id, created.name, created.status, created.is_active) == (
        "initech",
        "Initech",
        TenantStatus.ACTIVE,
        True,
    )
    assert created.created_at.tzinfo is not None
    found = store.get("initech")
    assert found is not None
    assert (found.id, found.name, found.status) == ("initech", "Initech", TenantStatus.ACTIVE)
    assert found.created_at == created.created_at
    assert [t.id for t in store.all()] == ["acme", "globex", "initech"]
    assert store.require("acme").name == "Acme Corp"


def test_unknown_tenant_is_none_for_get_and_not_found_for_require(store: TenantStore) -> None:
    """get of an unknown tenant is None; require names it in a NotFoundError."""
    assert store.get("nobody") is None
    with pytest.raises(NotFoundError, match="nobody"):
        store.require("nobody")


def test_duplicate_tenant_is_a_conflict(store: TenantStore) -> None:
    """Creating a tenant id that exists raises ConflictError and keeps the original."""
    with pytest.raises(ConflictError, match="acme"):
        store.create("acme", "Another Acme")

    found = store.get("acme")
    assert found is not None
    assert found.name == "Acme Corp"


@pytest.mark.parametrize(
    "tenant_id",
    [
        pytest.param("", id="empty"),
        pytest.param("Acme", id="uppercase"),
        pytest.param("-acme", id="leading-dash"),
        pytest.param(".acme", id="leading-dot"),
        pytest.param("_acme", id="leading-underscore"),
        pytest.param("ac me", id="space"),
        pytest.param("acme/ops", id="slash"),
        pytest.param("acmé", id="non-ascii"),
        pytest.param("acme\n", id="trailing-newline"),
        pytest.param("a" * 129, id="too-long"),
    ],
)
def test_invalid_tenant_id_is_refused(engine: Engine, tenant_id: str) -> None:
    """An id that is not lowercase letters, digits and _ . - (≤ 128) is refused and not stored."""
    with pytest.raises(ValueError, match="invalid tenant id"):
        check_tenant_id(tenant_id)
    store = TenantStore(engine)
    with pytest.raises(ValueError, match="invalid tenant id"):
        store.create(tenant_id, "Bad")
    assert store.all() == []


@pytest.mark.parametrize("tenant_id", ["a", "0", "acme", "acme-eu.prod_2", "a" * 128])
def test_valid_tenant_id_is_accepted(engine: Engine, tenant_id: str) -> None:
    """Lowercase letters, digits and _ . - starting with a letter or digit, up to 128, are ids."""
    assert check_tenant_id(tenant_id) == tenant_id
    assert TenantStore(engine).create(tenant_id, "Ok").id == tenant_id


def test_set_status_disables_and_reenables_a_tenant(store: TenantStore) -> None:
    """set_status changes only the given tenant's status, both ways."""
    store.set_status("acme", TenantStatus.DISABLED)

    acme = store.require("acme")
    assert (acme.status, acme.is_active) == (TenantStatus.DISABLED, False)
    assert store.require("globex").is_active

    store.set_status("acme", TenantStatus.ACTIVE)
    assert store.require("acme").is_active


def test_set_status_of_unknown_tenant_is_not_found(store: TenantStore) -> None:
    """set_status of a tenant that does not exist raises NotFoundError."""
    with pytest.raises(NotFoundError, match="nobody"):
        store.set_status("nobody", TenantStatus.DISABLED)


# --- keys -------------------------------------------------------------------------------


def test_find_key_returns_the_key_and_its_tenant_by_digest(store: TenantStore) -> None:
    """A key is found by its digest with its tenant; another digest finds nothing."""
    acme_key = add(store, "acme", "stk_acme_0123456789abcdef", label="alertmanager")
    add(store, "globex", "stk_glbx_0123456789abcdef")

    found = store.find_key(digest("stk_acme_0123456789abcdef"))

    assert found is not None
    key, tenant = found
    assert key == acme_key
    assert (key.tenant_id, key.prefix, key.label) == ("acme", "stk_acme", "alertmanager")
    assert (key.last_used_at, key.revoked_at) == (None, None)
    assert (tenant.id, tenant.name, tenant.status) == ("acme", "Acme Corp", TenantStatus.ACTIVE)
    assert store.find_key(digest("stk_acme_wrong")) is None
    assert store.find_key("stk_acme_0123456789abcdef") is None


def test_add_key_for_unknown_tenant_is_not_found(store: TenantStore) -> None:
    """A key cannot be added for a tenant that does not exist."""
    with pytest.raises(NotFoundError, match="nobody"):
        add(store, "nobody", "stk_nobody_key")
    assert store.find_key(digest("stk_nobody_key")) is None


def test_same_digest_twice_is_a_conflict(store: TenantStore) -> None:
    """A digest already stored (for any tenant) is refused with ConflictError."""
    add(store, "acme", "stk_same_key")

    with pytest.raises(ConflictError):
        add(store, "globex", "stk_same_key")

    found = store.find_key(digest("stk_same_key"))
    assert found is not None
    assert found[1].id == "acme"
    assert store.keys("globex") == []


def test_revoked_key_is_not_found(store: TenantStore) -> None:
    """A revoked key is no longer found but stays listed with its revocation time."""
    revoked = add(store, "acme", "stk_old_key")
    live = add(store, "acme", "stk_new_key")

    store.revoke_key("acme", revoked.id)

    assert store.find_key(digest("stk_old_key")) is None
    assert store.find_key(digest("stk_new_key")) is not None
    keys = store.keys("acme")
    assert [k.id for k in keys] == [revoked.id, live.id]
    assert keys[0].revoked_at is not None
    assert keys[1].revoked_at is None


def test_disabled_tenant_key_is_found_with_its_status(store: TenantStore) -> None:
    """find_key still finds a disabled tenant's key and says the tenant is disabled."""
    add(store, "acme", "stk_acme_key")
    store.set_status("acme", TenantStatus.DISABLED)

    found = store.find_key(digest("stk_acme_key"))

    assert found is not None
    assert (found[1].status, found[1].is_active) == (TenantStatus.DISABLED, False)


@pytest.mark.parametrize(
    ("tenant", "which"),
    [
        pytest.param("acme", "unknown", id="unknown-id"),
        pytest.param("globex", "acme", id="other-tenants-key"),
        pytest.param("nobody", "acme", id="unknown-tenant"),
        pytest.param("acme", "revoked", id="already-revoked"),
    ],
)
def test_revoke_of_a_key_that_is_not_live_for_the_tenant_is_not_found(
    store: TenantStore, tenant: str, which: str
) -> None:
    """revoke_key raises NotFoundError unless the key is the tenant's own live key."""
    ids = {
        "acme": add(store, "acme", "stk_acme_key").id,
        "revoked": add(store, "acme", "stk_revoked").id,
        "unknown": 999_999,
    }
    store.revoke_key("acme", ids["revoked"])

    with pytest.raises(NotFoundError):
        store.revoke_key(tenant, ids[which])

    assert store.find_key(digest("stk_acme_key")) is not None


def test_touch_keys_records_last_use_of_each_key(store: TenantStore) -> None:
    """touch_keys sets last_used_at of each given key and leaves the others alone."""
    first = add(store, "acme", "stk_first")
    second = add(store, "globex", "stk_second")
    untouched = add(store, "acme", "stk_untouched")

    store.touch_keys({first.id: T0, second.id: T0 + timedelta(minutes=5)})
    store.touch_keys({})

    used = {k.id: k.last_used_at for t in ("acme", "globex") for k in store.keys(t)}
    assert used == {first.id: T0, second.id: T0 + timedelta(minutes=5), untouched.id: None}
    found = store.find_key(digest("stk_first"))
    assert found is not None
    assert found[0].last_used_at == T0


def test_keys_lists_only_the_tenants_own_keys(store: TenantStore) -> None:
    """keys(tenant) lists that tenant's keys in creation order, never another tenant's."""
    one = add(store, "acme", "stk_one", label="one")
    add(store, "globex", "stk_glbx")
    two = add(store, "acme", "stk_two", label="two")

    assert [(k.id, k.label, k.tenant_id) for k in store.keys("acme")] == [
        (one.id, "one", "acme"),
        (two.id, "two", "acme"),
    ]
    assert store.keys("nobody") == []
