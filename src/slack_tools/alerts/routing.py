"""Routing: which channels a group goes to, in which language, at which threshold.

A tenant's routes are tried in order, as in Alertmanager: the first whose
matchers all match the group's common labels takes it, and ``continue: true``
lets the next ones match too. No match sends it to the tenant's channel.
A target whose threshold the group does not reach is kept but marked, because
a group already posted there must still be updated (a resolve always goes through).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from slack_tools.alerts.models import AlertGroup
from slack_tools.configs.matchers import Matcher, parse_matcher
from slack_tools.configs.schema import THRESHOLD_ALIASES, Route, Severity, TenantConfig


@dataclass(frozen=True, slots=True)
class Target:
    """One channel a group is for."""

    channel: str
    locale: str
    threshold: Severity
    route: int | None  # index in the tenant's routes; None for the tenant's default channel
    passes_threshold: bool


def threshold_severity(threshold: str) -> Severity:
    """``critical_only`` → critical, ``all`` → none, a severity name → itself."""
    return THRESHOLD_ALIASES.get(threshold) or Severity(threshold)


@lru_cache(maxsize=4096)
def _matchers(texts: tuple[str, ...]) -> tuple[Matcher, ...]:
    # Routes come from validated configuration, so parsing cannot fail here.
    return tuple(parse_matcher(text) for text in texts)


def _target(
    group: AlertGroup, channel: str, locale: str, threshold: str, route: int | None
) -> Target:
    level = threshold_severity(threshold)
    return Target(channel, locale, level, route, group.severity.rank >= level.rank)


def route_group(group: AlertGroup, tenant: TenantConfig) -> tuple[Target, ...]:
    """The channels ``group`` goes to under ``tenant``'s routes (one target per channel)."""
    labels = {**group.group_labels, **group.common_labels}
    targets: dict[str, Target] = {}
    for index, route in enumerate(tenant.routes):
        if not all(m.matches(labels) for m in _matchers(route.matchers)):
            continue
        target = _route_target(group, tenant, route, index)
        known = targets.get(route.channel)
        # Two routes to one channel: the first decides, unless only a later one lets it through.
        if known is None or (target.passes_threshold and not known.passes_threshold):
            targets[route.channel] = target
        if not route.continue_:
            break
    if not targets:
        targets[tenant.slack_channel] = _target(
            group, tenant.slack_channel, tenant.locale, tenant.alert_threshold, None
        )
    return tuple(targets.values())


def _route_target(group: AlertGroup, tenant: TenantConfig, route: Route, index: int) -> Target:
    return _target(
        group,
        route.channel,
        route.locale or tenant.locale,
        route.alert_threshold or tenant.alert_threshold,
        index,
    )
