"""Configuration read, lookup and load costs, side by side with their baselines.

    .venv/bin/python bench/config.py

Prints figures; asserts nothing (machines are shared and noisy). Compared in the
same run: an attribute read on the resolved configuration vs a plain (mutable)
pydantic model holding the same data vs Dynaconf reading the same YAML; the
cached effective tenant+user lookup; a full load + validate of production.yaml.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dynaconf import Dynaconf
from pydantic import BaseModel

from slack_tools.configs import ConfigManager, ConfigRuntime
from slack_tools.configs.config_loader import load_sources, read_environment, resolve
from slack_tools.configs.security import generate_key

READS = 200_000
REPEATS = 7


def per_call_ns(function: Callable[[], Any], number: int = READS) -> float:
    """Median over REPEATS runs of the time of one call, in nanoseconds."""
    runs = timeit.repeat(function, number=number, repeat=REPEATS)
    return statistics.median(runs) / number * 1e9


class PlainBreaker(BaseModel):
    failure_rate_threshold: float


class PlainResilience(BaseModel):
    breaker: PlainBreaker


class PlainConfig(BaseModel):
    resilience: PlainResilience


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        environ = {
            "SLACK_TOOLS_DATA_DIR": workdir,
            "SLACK_TOOLS_MASTER_KEYS": f"k1:{generate_key()}",
        }
        runtime = ConfigRuntime(read_environment(environ), files=[], migrate=True)
        runtime.start()
        config = runtime.config
        plain = PlainConfig.model_validate(
            {"resilience": {"breaker": {"failure_rate_threshold": 0.5}}}
        )
        settings_file = Path(workdir) / "settings.yaml"
        settings_file.write_text("resilience:\n  breaker:\n    failure_rate_threshold: 0.5\n")
        dynaconf = Dynaconf(settings_files=[str(settings_file)], environments=False)
        assert dynaconf.resilience.breaker.failure_rate_threshold == 0.5

        ours = per_call_ns(lambda: config.resilience.breaker.failure_rate_threshold)
        baseline = per_call_ns(lambda: plain.resilience.breaker.failure_rate_threshold)
        theirs = per_call_ns(
            lambda: dynaconf.resilience.breaker.failure_rate_threshold, number=READS // 20
        )

        manager = ConfigManager(runtime)
        manager.update_tenant_config("tenant_bench", {"slack_channel": "#bench"})
        manager.update_user_config("tenant_bench", "U0BENCH1", {"locale": "de_DE"})
        runtime.effective("tenant_bench", "U0BENCH1")
        lookup = per_call_ns(lambda: runtime.effective("tenant_bench", "U0BENCH1"))
        first = []
        for _ in range(50):
            runtime._invalidate_all()  # noqa: SLF001 - measure the uncached path too
            start = time.perf_counter_ns()
            runtime.effective("tenant_bench", "U0BENCH1")
            first.append(time.perf_counter_ns() - start)
        runtime.database.dispose()

        production = {
            "ENVIRONMENT": "production",
            "SLACK_TOOLS_DATA_DIR": workdir,
            "DATABASE_URL": f"sqlite:///{workdir}/prod.db",
            "SLACK_TOOLS_MASTER_KEYS": environ["SLACK_TOOLS_MASTER_KEYS"],
        }
        loads = []
        for _ in range(30):
            start = time.perf_counter_ns()
            resolve(load_sources(read_environment(production), []))
            loads.append(time.perf_counter_ns() - start)

    print("configuration benchmark (median of repeated runs)")
    print(f"{'measure':<58}{'value':>14}{'goal':>14}")
    rows = [
        ("attribute read, 3 levels: resolved config", f"{ours:.0f} ns", ""),
        ("attribute read, 3 levels: plain pydantic model", f"{baseline:.0f} ns", ""),
        ("attribute read, 3 levels: Dynaconf", f"{theirs:.0f} ns", ""),
        ("  resolved config / plain pydantic", f"{ours / baseline:.2f}x", "<= 1.5x"),
        ("  Dynaconf / resolved config", f"{theirs / ours:.0f}x", ""),
        ("effective tenant+user lookup, cached", f"{lookup / 1000:.2f} us", "<= 5 us"),
        (
            "effective tenant+user lookup, uncached (2 SQLite reads)",
            f"{statistics.median(first) / 1e6:.2f} ms",
            "",
        ),
        (
            "load + validate production.yaml (files, env, rules)",
            f"{statistics.median(loads) / 1e6:.1f} ms",
            "<= 50 ms",
        ),
    ]
    for name, value, goal in rows:
        print(f"{name:<58}{value:>14}{goal:>14}")


if __name__ == "__main__":
    main()
