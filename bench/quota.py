"""Quota check cost: one take in memory and in Redis, beside a bare Redis INCR round trip.

    .venv/bin/python bench/quota.py [--takes 20000] [--repeats 5] [--redis redis://127.0.0.1:6379/15]

Each variant awaits its takes one after another on one event loop (uvloop when
installed, as the service runs), spread over 100 tenants:

- memory: ``MemoryQuotaCounter.take``;
- Redis: ``RedisQuotaCounter.take`` (``INCRBY`` and ``EXPIRE`` in one transaction);
- Redis with failover: the same through ``FailoverQuotaCounter``, as the service uses it;
- bare INCR (the baseline): ``await client.incr(key)`` with the same client, the
  cheapest round trip a shared counter can cost.

Median and best of the runs after a warm-up. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from slack_tools.configs.quotas import (
    FailoverQuotaCounter,
    MemoryQuotaCounter,
    Quota,
    RedisQuotaCounter,
)

QUOTA = Quota.named("alerts_per_minute", 1_000_000_000)
TENANTS = [f"tenant-{n}" for n in range(100)]

Take = Callable[[str], Awaitable[object]]


async def timed(take: Take, takes: int) -> float:
    started = time.perf_counter()
    for n in range(takes):
        await take(TENANTS[n % len(TENANTS)])
    return time.perf_counter() - started


async def run(takes: int, repeats: int, url: str) -> None:
    prefix = f"slack_tools_bench:{uuid.uuid4().hex}:"
    client = Redis.from_url(url)
    memory = MemoryQuotaCounter()
    redis_counter = RedisQuotaCounter(client, prefix)
    failover = FailoverQuotaCounter(RedisQuotaCounter(client, prefix))

    async def bare(tenant: str) -> object:
        return await client.incr(f"{prefix}bare:{tenant}")

    variants: list[tuple[str, Take]] = [
        ("memory", lambda t: memory.take(t, QUOTA)),
        ("Redis", lambda t: redis_counter.take(t, QUOTA)),
        ("Redis with failover", lambda t: failover.take(t, QUOTA)),
        ("bare Redis INCR (baseline)", bare),
    ]
    try:
        await client.ping()
        results: dict[str, list[float]] = {name: [] for name, _ in variants}
        for _name, take in variants:  # warm-up
            await timed(take, min(takes, 2000))
        for _ in range(repeats):
            for name, take in variants:
                results[name].append(await timed(take, takes))
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()

    baseline = statistics.median(results["bare Redis INCR (baseline)"]) / takes
    print(f"quota benchmark: {takes} takes per run, {repeats} runs, one event loop")
    print(f"{'variant':30} {'us/take':>9} {'best':>8} {'takes/s':>10} {'vs INCR':>8}")
    for name, _ in variants:
        median = statistics.median(results[name]) / takes
        best = min(results[name]) / takes
        print(
            f"{name:30} {median * 1e6:9.1f} {best * 1e6:8.1f} "
            f"{1 / median:10,.0f} {median / baseline:8.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--takes", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    options = parser.parse_args()
    try:
        import uvloop  # noqa: PLC0415 - optional, as in the service

        runner: Callable[..., object] = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(run(options.takes, options.repeats, options.redis))


if __name__ == "__main__":
    main()
