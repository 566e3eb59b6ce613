"""Partial isolation on real databases: a tenant's secrets under its own data key, shredded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from slack_tools.configs import ConfigManager, ConfigRuntime, ConfigValidationError
from slack_tools.configs.rotation import rotate_data_keys, rotate_documents
from slack_tools.configs.security import TENANT_PREFIX, TenantCipher, generate_key
from slack_tools.configs.tenant_manager import TenantManager
from slack_tools.errors import ConflictError, SecretError
from slack_tools.storage import DocumentKey
from slack_tools.storage.tenants import TenantStore
from tests.helpers import assert_no_secret

MakeRuntime = Callable[..., ConfigRuntime]
TOKEN = "xoxb-6666666666-partial-isolation-token"
OTHER_TOKEN = "xoxb-7777777777-logical-tenant-token"


@pytest.fixture
def runtime(make_runtime: MakeRuntime, database_url: str, master_keys: str) -> ConfigRuntime:
    return make_runtime(database_url=database_url, extra={"SLACK_TOOLS_MASTER_KEYS": master_keys})


def stored_token(runtime: ConfigRuntime, tenant_id: str) -> str:
    current = runtime.store.current(DocumentKey.for_scope(tenant_id))
    assert current is not None
    value = current.content["slack_bot_token"]
    assert isinstance(value, str)
    return value


def create(runtime: ConfigRuntime, tenant_id: str, isolation: str, token: str) -> TenantManager:
    manager, _ = TenantManager.create(
        tenant_id,
        config={"slack_channel": "#alerts", "isolation": isolation, "slack_bot_token": token},
        runtime=runtime,
    )
    return manager


def token_of(runtime: ConfigRuntime, tenant_id: str) -> str:
    secret = runtime.effective(tenant_id).tenant.slack_bot_token
    assert secret is not None
    return secret.get_secret_value()


def test_a_partial_tenants_token_is_under_its_own_key_and_a_logical_ones_under_the_master(
    runtime: ConfigRuntime,
) -> None:
    create(runtime, "acme", "partial", TOKEN)
    create(runtime, "globex", "logical", OTHER_TOKEN)

    assert stored_token(runtime, "acme").startswith(TENANT_PREFIX)
    assert stored_token(runtime, "globex").startswith("enc:v1:")
    assert token_of(runtime, "acme") == TOKEN
    assert token_of(runtime, "globex") == OTHER_TOKEN
    store = TenantStore(runtime.database.engine)
    wrapped = store.data_key("acme")
    assert wrapped is not None
    assert wrapped.startswith("enc:v1:")  # the data key only ever stored wrapped
    assert store.data_key("globex") is None
    assert_no_secret(repr(store.data_keys()), TOKEN)


def test_another_instance_reads_the_partial_tenants_secrets(
    make_runtime: MakeRuntime, database_url: str, master_keys: str
) -> None:
    extra = {"SLACK_TOOLS_MASTER_KEYS": master_keys}
    here = make_runtime(database_url=database_url, extra=extra)
    other = make_runtime(database_url=database_url, extra=extra)
    create(here, "acme", "partial", TOKEN)
    assert token_of(other, "acme") == TOKEN


def test_a_value_copied_into_another_tenant_does_not_decrypt(runtime: ConfigRuntime) -> None:
    """Each data key is the tenant's own, and the key path is bound to every value."""
    create(runtime, "acme", "partial", TOKEN)
    create(runtime, "globex", "partial", OTHER_TOKEN)
    copied = stored_token(runtime, "acme")
    globex = runtime.cipher_for("globex", {"isolation": "partial"})
    assert isinstance(globex, TenantCipher)
    with pytest.raises(SecretError, match="data key"):
        globex.decrypt(copied, "tenant/globex/slack_bot_token")


def test_becoming_partial_moves_the_secrets_under_the_tenants_key(
    runtime: ConfigRuntime,
) -> None:
    manager = create(runtime, "acme", "logical", TOKEN)
    assert stored_token(runtime, "acme").startswith("enc:v1:")

    manager.update_config({"isolation": "partial"})

    assert stored_token(runtime, "acme").startswith(TENANT_PREFIX)
    assert token_of(runtime, "acme") == TOKEN
    history = manager.history()
    assert [v.version for v in history] == [2, 1]
    # Leaving partial isolation means giving the secrets again, in the same change.
    with pytest.raises(ConfigValidationError, match="data key"):
        manager.update_config({"isolation": "logical"})
    manager.update_config({"isolation": "logical", "slack_bot_token": TOKEN})
    assert stored_token(runtime, "acme").startswith("enc:v1:")
    assert token_of(runtime, "acme") == TOKEN


def test_deleting_the_tenant_shreds_its_key_so_a_copy_of_its_values_is_unreadable(
    runtime: ConfigRuntime,
) -> None:
    """A backup copy of the tenant's ciphertext is useless once its data key is gone."""
    manager = create(runtime, "acme", "partial", TOKEN)
    copy_of_value = stored_token(runtime, "acme")
    removed = manager.delete()
    assert removed["data_keys"] == 1
    assert TenantStore(runtime.database.engine).data_key("acme") is None

    create(runtime, "acme", "partial", OTHER_TOKEN)  # the id again: a new key
    fresh = runtime.cipher_for("acme", {"isolation": "partial"})
    assert fresh is not None
    with pytest.raises(SecretError, match="data key"):
        fresh.decrypt(copy_of_value, "tenant/acme/slack_bot_token")


def test_rotating_the_master_key_rewraps_data_keys_and_the_values_still_read(
    make_runtime: MakeRuntime, database_url: str, master_keys: str
) -> None:
    first = make_runtime(database_url=database_url, extra={"SLACK_TOOLS_MASTER_KEYS": master_keys})
    create(first, "acme", "partial", TOKEN)
    value_before = stored_token(first, "acme")
    wrapped_before = TenantStore(first.database.engine).data_key("acme")

    rotated_keys = f"k2:{generate_key()},{master_keys}"
    second = make_runtime(
        database_url=database_url, extra={"SLACK_TOOLS_MASTER_KEYS": rotated_keys}
    )
    master = second.snapshot.loaded.cipher
    assert master is not None
    rotate_documents(second.store, master)
    assert rotate_data_keys(TenantStore(second.database.engine), master) == 1

    wrapped_after = TenantStore(second.database.engine).data_key("acme")
    assert wrapped_after != wrapped_before
    assert wrapped_after is not None
    assert wrapped_after.startswith("enc:v1:k2:")
    assert stored_token(second, "acme") == value_before  # the value itself is untouched
    new_key_only = rotated_keys.split(",", maxsplit=1)[0]
    only_new_key = make_runtime(
        database_url=database_url, extra={"SLACK_TOOLS_MASTER_KEYS": new_key_only}
    )
    assert token_of(only_new_key, "acme") == TOKEN


def test_partial_isolation_without_a_master_key_is_refused(
    make_runtime: MakeRuntime, database_url: str
) -> None:
    runtime = make_runtime(database_url=database_url)
    with pytest.raises(SecretError, match="master key"):
        ConfigManager(runtime).update_tenant_config(
            "acme", {"slack_channel": "#alerts", "isolation": "partial", "slack_bot_token": TOKEN}
        )


def test_another_instance_reads_a_partial_tenant_deleted_and_created_again(
    make_runtime: MakeRuntime, database_url: str, master_keys: str
) -> None:
    """The other instance's unwrapped key of the old tenant is not used for the new one."""
    extra = {"SLACK_TOOLS_MASTER_KEYS": master_keys}
    here = make_runtime(database_url=database_url, extra=extra)
    other = make_runtime(database_url=database_url, extra=extra)
    create(here, "acme", "partial", TOKEN)
    assert token_of(other, "acme") == TOKEN
    TenantManager("acme", here).delete()
    create(here, "acme", "partial", OTHER_TOKEN)
    other.refresh_from_database()
    assert token_of(other, "acme") == OTHER_TOKEN


def test_a_tenant_partial_by_default_stays_readable_when_the_default_changes(
    make_runtime: MakeRuntime, database_url: str, master_keys: str, tmp_path: Path
) -> None:
    """The mode is written into the document with the first value under the tenant's key."""
    defaults = tmp_path / "partial.yaml"
    defaults.write_text("tenants:\n  defaults:\n    isolation: partial\n")
    extra = {"SLACK_TOOLS_MASTER_KEYS": master_keys}
    before = make_runtime(database_url=database_url, extra=extra, files=[defaults])
    TenantManager.create(
        "acme", config={"slack_channel": "#alerts", "slack_bot_token": TOKEN}, runtime=before
    )
    assert stored_token(before, "acme").startswith(TENANT_PREFIX)
    current = before.store.current(DocumentKey.for_scope("acme"))
    assert current is not None
    assert current.content["isolation"] == "partial"

    after = make_runtime(database_url=database_url, extra=extra)  # default back to logical
    assert token_of(after, "acme") == TOKEN
    TenantManager("acme", after).update_config({"locale": "de_DE"})
    assert token_of(after, "acme") == TOKEN


def test_reading_a_tenant_makes_no_data_key(
    make_runtime: MakeRuntime, database_url: str, master_keys: str, tmp_path: Path
) -> None:
    defaults = tmp_path / "partial.yaml"
    defaults.write_text("tenants:\n  defaults:\n    isolation: partial\n")
    runtime = make_runtime(
        database_url=database_url, extra={"SLACK_TOOLS_MASTER_KEYS": master_keys}, files=[defaults]
    )
    runtime.effective("nobody")
    assert TenantStore(runtime.database.engine).data_keys() == {}


def test_two_writers_reviving_one_deleted_document_do_not_both_succeed(
    make_runtime: MakeRuntime, database_url: str, master_keys: str
) -> None:
    """A deleted document written again by two writers at once: one wins, one conflicts."""
    extra = {"SLACK_TOOLS_MASTER_KEYS": master_keys}
    runtime = make_runtime(database_url=database_url, extra=extra)
    create(runtime, "acme", "logical", TOKEN)
    TenantManager("acme", runtime).delete()
    key = DocumentKey.for_scope("acme")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def write(channel: str) -> None:
        barrier.wait()
        try:
            runtime.store.append(key, {"slack_channel": channel}, expected_version=0, author="t")
            outcomes.append("written")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(f"#{n}",)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "written"]
    assert len(runtime.store.history(key)) == 1
