"""The service's lookups go through the cache manager: effective views, API keys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from slack_tools.configs import ConfigManager, ConfigRuntime
from slack_tools.configs.cache_manager import CacheManager, Event, Tier
from slack_tools.configs.metrics import CacheMetrics, build_registry
from slack_tools.configs.runtime import EFFECTIVE_NAMESPACE
from slack_tools.configs.schema import AppConfig
from slack_tools.configs.security import new_api_key
from slack_tools.service.app import create_app
from slack_tools.service.container import build_service
from slack_tools.service.ingest import KEYS_NAMESPACE, KeyCache, Unauthorized
from slack_tools.storage.tenants import TenantStore
from tests.conftest import REDIS_URL
from tests.integration.test_ingest_http import ALERTMANAGER

MakeRuntime = Callable[..., ConfigRuntime]


def count(cache: CacheManager, namespace: str, event: Event, tenant_class: str) -> int:
    """How many ``event``s L1 of ``namespace`` counted for ``tenant_class``."""
    key = (namespace, Tier.L1.value, event.value, tenant_class)
    return cache.stats.snapshot().get(key, 0)


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for ``condition`` (a bound, not a measurement: fails only if it never holds)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.02)


def test_effective_views_are_cached_and_counted_by_plan(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    runtime = make_runtime(database_url=f"sqlite:///{tmp_path / 'cache.db'}")
    registry = build_registry()
    cache = CacheManager(runtime.config, disk_path=tmp_path / "cache.sqlite3")
    CacheMetrics(registry).watch(cache)
    runtime.use_cache(cache)
    manager = ConfigManager(runtime)
    manager.update_tenant_config("acme", {"plan": "premium", "slack_channel": "#one"})

    assert runtime.peek_effective("acme") is None
    first = runtime.effective("acme")
    assert runtime.effective("acme") is first
    assert runtime.peek_effective("acme") is first
    assert count(cache, EFFECTIVE_NAMESPACE, Event.MISS, "premium") == 1
    assert count(cache, EFFECTIVE_NAMESPACE, Event.HIT, "premium") == 2

    manager.update_tenant_config("acme", {"slack_channel": "#two"})
    assert runtime.peek_effective("acme") is None
    assert runtime.effective("acme").tenant.slack_channel == "#two"
    assert count(cache, EFFECTIVE_NAMESPACE, Event.MISS, "premium") == 2

    exported = generate_latest(registry).decode()
    assert 'namespace="effective_config"' in exported
    assert 'tenant_class="premium"' in exported
    assert "acme" not in exported  # the plan is the label, never the tenant


def test_a_user_write_drops_only_that_users_view(make_runtime: MakeRuntime, tmp_path: Path) -> None:
    runtime = make_runtime(database_url=f"sqlite:///{tmp_path / 'cache.db'}")
    manager = ConfigManager(runtime)
    tenant = runtime.effective("acme")
    alice = runtime.effective("acme", "alice")
    bob = runtime.effective("acme", "bob")

    manager.update_user_config("acme", "alice", {"locale": "de_DE"})

    assert runtime.peek_effective("acme", "alice") is None
    assert runtime.peek_effective("acme", "bob") is bob
    assert runtime.peek_effective("acme") is tenant
    assert runtime.effective("acme", "alice") is not alice


@pytest.mark.redis
async def test_a_tenant_write_reaches_another_instance_through_redis(
    make_runtime: MakeRuntime, tmp_path: Path, prefix: str
) -> None:
    """Two instances on one database and one Redis: B drops its view when A writes,
    without waiting for its database poll."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = make_runtime(database_url=url), make_runtime(database_url=url)
    caches = []
    for name, runtime in (("a", a), ("b", b)):
        config = AppConfig.model_validate(
            {"data_dir": str(tmp_path / name), "redis": {"url": REDIS_URL, "key_prefix": prefix}}
        )
        cache = CacheManager(config)
        await cache.start()
        runtime.use_cache(cache)
        caches.append(cache)
    try:
        await until(lambda: all(c.core.channel_up for c in caches))
        ConfigManager(a).update_tenant_config("acme", {"slack_channel": "#one"})
        b.refresh_from_database()
        assert b.effective("acme").tenant.slack_channel == "#one"
        assert b.peek_effective("acme") is not None

        ConfigManager(a).update_tenant_config("acme", {"slack_channel": "#two"})

        await until(lambda: b.peek_effective("acme") is None)
        assert b.effective("acme").tenant.slack_channel == "#two"
        received = count(caches[1], EFFECTIVE_NAMESPACE, Event.INVALIDATION_RECEIVED, "none")
        assert received >= 1
    finally:
        for cache in caches:
            await cache.aclose()


async def test_api_key_lookups_are_cached_by_digest_and_dropped_on_revocation(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    runtime = make_runtime(database_url=f"sqlite:///{tmp_path / 'keys.db'}")
    store = TenantStore(runtime.database.engine)
    store.create("acme", "Acme")
    key = new_api_key()
    record = store.add_key("acme", digest=key.digest, prefix=key.prefix, label="test")
    cache = CacheManager(runtime.config, disk_path=tmp_path / "cache.sqlite3")
    keys = KeyCache(store, 300.0, cache, tenant_class=lambda _tenant: "premium")
    bearer = f"Bearer {key.key}"

    assert (await keys.caller(bearer)).tenant_id == "acme"
    assert (await keys.caller(bearer)).key_id == record.id
    assert count(cache, KEYS_NAMESPACE, Event.MISS, "premium") == 1
    assert count(cache, KEYS_NAMESPACE, Event.HIT, "premium") == 1
    namespace = cache.namespace(KEYS_NAMESPACE)
    assert list(namespace.memory.keys()) == [key.digest]  # the digest, never the key

    store.revoke_key("acme", record.id)
    assert (await keys.caller(bearer)).tenant_id == "acme"  # cached until told
    keys.forget_tenant("acme")
    with pytest.raises(Unauthorized):
        await keys.caller(bearer)
    with pytest.raises(Unauthorized):  # remembered as unknown: no second database read
        await keys.caller(bearer)
    assert count(cache, KEYS_NAMESPACE, Event.MISS, "none") == 1


async def test_the_service_exports_its_cache_counts_by_plan(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """Alerts posted to a running service go through the cache, and /metrics shows it."""
    runtime = make_runtime(database_url=f"sqlite:///{tmp_path / 'service.db'}")
    service = build_service(runtime, port=1)
    app = httpx.ASGITransport(app=create_app(service))
    store = TenantStore(runtime.database.engine)
    store.create("acme", "Acme")
    key = new_api_key()
    store.add_key("acme", digest=key.digest, prefix=key.prefix, label="test")
    ConfigManager(runtime).update_tenant_config("acme", {"plan": "premium"})
    await service.start()
    assert runtime.cache is service.cache
    try:
        async with httpx.AsyncClient(transport=app, base_url="http://test") as client:
            headers = {"Authorization": f"Bearer {key.key}", "Content-Type": "application/json"}
            for group in ("One", "Two"):
                body = ALERTMANAGER.firing(group)
                response = await client.post(ALERTMANAGER.path, json=body, headers=headers)
                assert response.status_code == 202, response.text
            text = (await client.get("/metrics")).text
    finally:
        await service.close(1.0)

    events = {
        (s.labels["namespace"], s.labels["event"], s.labels["tenant_class"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "slack_tools_cache_events"
        for s in family.samples
    }
    assert events[(EFFECTIVE_NAMESPACE, "miss", "premium")] >= 1
    assert events[(EFFECTIVE_NAMESPACE, "hit", "premium")] >= 1
    assert events[(KEYS_NAMESPACE, "miss", "premium")] == 1
    assert events[(KEYS_NAMESPACE, "hit", "premium")] == 1
    assert not any("acme" in label for labels in events for label in labels)


@pytest.mark.redis
async def test_a_revocation_on_one_instance_drops_the_key_on_another(
    make_runtime: MakeRuntime, tmp_path: Path, prefix: str
) -> None:
    runtime = make_runtime(database_url=f"sqlite:///{tmp_path / 'keys.db'}")
    store = TenantStore(runtime.database.engine)
    store.create("acme", "Acme")
    key = new_api_key()
    record = store.add_key("acme", digest=key.digest, prefix=key.prefix, label="test")
    caches = []
    for name in ("a", "b"):
        config = AppConfig.model_validate(
            {"data_dir": str(tmp_path / name), "redis": {"url": REDIS_URL, "key_prefix": prefix}}
        )
        cache = CacheManager(config)
        await cache.start()
        caches.append(cache)
    try:
        await until(lambda: all(c.core.channel_up for c in caches))
        a, b = (KeyCache(store, 300.0, cache) for cache in caches)
        bearer = f"Bearer {key.key}"
        assert (await b.caller(bearer)).key_id == record.id
        known = caches[1].namespace(KEYS_NAMESPACE)
        assert list(known.memory.keys()) == [key.digest]

        store.revoke_key("acme", record.id)
        a.forget_tenant("acme")

        await until(lambda: not list(known.memory.keys()))
        with pytest.raises(Unauthorized):
            await b.caller(bearer)
    finally:
        for cache in caches:
            await cache.aclose()
