"""Prometheus metrics in the ``slack_tools_*`` family, on a registry the caller owns.

Library code never registers on the global registry: the service builds one
registry and passes it, so tests get a fresh one each and two services in one
process do not collide.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from slack_tools.configs.runtime import ConfigRuntime


def build_registry() -> CollectorRegistry:
    """A fresh registry for one service."""
    return CollectorRegistry(auto_describe=True)


class ConfigCollector(Collector):
    """Reload outcomes and the active configuration, read from the runtime at scrape time."""

    def __init__(self, runtime: ConfigRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        status = self.runtime.status
        reloads = CounterMetricFamily(
            "slack_tools_config_reloads",
            "Configuration reloads by trigger and outcome.",
            labels=["trigger", "outcome"],
        )
        for (trigger, outcome), count in sorted(self.runtime.reload_counts_snapshot().items()):
            reloads.add_metric([trigger, outcome], count)
        yield reloads
        success = GaugeMetricFamily(
            "slack_tools_config_last_reload_success",
            "1 if the last configuration reload was applied or unchanged, 0 if rejected.",
        )
        success.add_metric([], 0.0 if status.outcome == "rejected" else 1.0)
        yield success
        if status.at is not None:
            yield GaugeMetricFamily(
                "slack_tools_config_last_reload_timestamp_seconds",
                "When the last configuration reload ran (Unix time).",
                value=status.at.timestamp(),
            )
        info = GaugeMetricFamily(
            "slack_tools_config_info",
            "The active configuration: environment and content hash.",
            labels=["environment", "hash"],
        )
        info.add_metric([self.runtime.config.environment.value, status.active_hash[:12]], 1.0)
        yield info
