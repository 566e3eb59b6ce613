"""The one object that holds everything a running service needs, built from the configuration."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from slack_tools.configs import ConfigManager, ConfigRuntime
from slack_tools.configs.hot_reload import ConfigWatcher
from slack_tools.configs.metrics import ConfigCollector, build_registry
from slack_tools.service.logging import scrubber
from slack_tools.storage import Database


@dataclass
class Service:
    """Configuration runtime, database, metrics registry and background workers."""

    runtime: ConfigRuntime
    registry: CollectorRegistry
    watcher: ConfigWatcher
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def manager(self) -> ConfigManager:
        return ConfigManager(self.runtime)

    @property
    def database(self) -> Database:
        return self.runtime.database


def known_secrets(runtime: ConfigRuntime) -> list[str]:
    """Secret values the log scrubber must never let through."""
    config = runtime.config
    values = [
        config.slack.bot_token,
        config.slack.signing_secret,
        config.security.admin_token,
        config.database.password,
        config.redis.password,
        runtime.environment.master_keys,
    ]
    found = [v.get_secret_value() for v in values if v is not None]
    if runtime.environment.master_keys is not None:
        # Each key's base64 on its own, as well as the whole variable.
        found += [entry.partition(":")[2] for entry in found[-1].split(",")]
    return found


def build_service(runtime: ConfigRuntime) -> Service:
    """Wire a service around a started configuration runtime."""
    config = runtime.config
    registry = build_registry()
    registry.register(ConfigCollector(runtime))
    paths = list(runtime.environment.config_paths)
    watcher = ConfigWatcher(
        runtime,
        [Path(p) for p in paths],
        debounce_seconds=config.reload.debounce_seconds,
        poll_database_seconds=config.reload.poll_database_seconds,
        watch_files=config.reload.watch_files,
    )
    runtime.on_change(lambda _change: scrubber.update(known_secrets(runtime)))
    # monitoring.log_level may change at run time (global overrides, files).
    runtime.on_change(
        lambda change: logging.getLogger().setLevel(change.current.monitoring.log_level)
    )
    return Service(runtime=runtime, registry=registry, watcher=watcher)
