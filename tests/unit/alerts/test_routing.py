"""Routing: the channels a group goes to, their language, and whether it passes the threshold."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from slack_tools.alerts.models import Alert, AlertGroup, Source, Status
from slack_tools.alerts.routing import Target, route_group, threshold_severity
from slack_tools.configs.schema import Severity, TenantConfig

DEFAULT = "#alerts"


def tenant(
    routes: Sequence[Mapping[str, Any]] = (),
    threshold: str = "all",
    locale: str = "fr_FR",
) -> TenantConfig:
    """A tenant whose default channel is #alerts, with the given routes and threshold."""
    return TenantConfig.model_validate(
        {
            "slack_channel": DEFAULT,
            "alert_threshold": threshold,
            "routes": list(routes),
            "locale": locale,
            "timezone": "Europe/Paris",
            "plan": "standard",
            "quotas": {"alerts_per_minute": 100},
            "isolation": "logical",
        }
    )


def group(
    labels: Mapping[str, str] | None = None,
    severity: str | None = "critical",
    status: Status = Status.FIRING,
    group_labels: Mapping[str, str] | None = None,
) -> AlertGroup:
    """A group of one alert whose labels are also the group's common labels."""
    all_labels = {"alertname": "HighErrorRate", **(labels or {})}
    if severity is not None:
        all_labels["severity"] = severity
    alert = Alert("fp1", status, all_labels, {}, None, None)
    return AlertGroup(
        source=Source.ALERTMANAGER,
        group_key="key",
        status=status,
        alerts=(alert,),
        group_labels=dict(group_labels or {}),
        common_labels=all_labels,
    )


def channels(targets: Sequence[Target]) -> list[tuple[str, int | None]]:
    """Each target's channel and route index, in order."""
    return [(t.channel, t.route) for t in targets]


ROUTES: list[dict[str, Any]] = [
    {"matchers": ['team=~"db"'], "channel": "#db"},
    {"matchers": ['team=~"web|api"', 'env!="dev"'], "channel": "#web", "continue": True},
    {
        "matchers": ['env="prod"'],
        "channel": "#prod",
        "alert_threshold": "critical_only",
        "locale": "en_US",
    },
    {"matchers": ['team!~".+"'], "channel": "#no-team"},
]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"team": "db", "env": "prod"}, [("#db", 0)]),
        ({"team": "dbx", "env": "prod"}, [("#prod", 2)]),
        ({"team": "xdb", "env": "staging"}, [(DEFAULT, None)]),
        ({"team": "web", "env": "prod"}, [("#web", 1), ("#prod", 2)]),
        ({"team": "api", "env": "staging"}, [("#web", 1)]),
        ({"team": "api"}, [("#web", 1)]),
        ({"team": "api", "env": "dev"}, [(DEFAULT, None)]),
        ({"team": "webapi", "env": "prod"}, [("#prod", 2)]),
        ({"env": "prod"}, [("#prod", 2)]),
        ({"env": "staging"}, [("#no-team", 3)]),
        ({"team": "", "env": "staging"}, [("#no-team", 3)]),
        ({}, [("#no-team", 3)]),
    ],
)
def test_routing_table(labels: dict[str, str], expected: list[tuple[str, int | None]]) -> None:
    """First match wins, continue goes on, regexes are anchored, absent labels match ""."""
    assert channels(route_group(group(labels), tenant(ROUTES))) == expected


def test_no_routes_go_to_the_default_channel() -> None:
    """A tenant without routes sends everything to its channel, with its locale and threshold."""
    (target,) = route_group(group(), tenant(locale="de_DE", threshold="error"))
    assert target == Target(DEFAULT, "de_DE", Severity.ERROR, None, passes_threshold=True)


def test_not_empty_matcher_is_false_when_the_label_is_absent() -> None:
    """x!="" does not match a group without x, so the group falls to the default channel."""
    routes: list[dict[str, Any]] = [{"matchers": ['x!=""'], "channel": "#x"}]
    assert channels(route_group(group(), tenant(routes))) == [(DEFAULT, None)]
    assert channels(route_group(group({"x": "1"}), tenant(routes))) == [("#x", 0)]


def test_route_without_matchers_takes_everything() -> None:
    """A route with no matchers matches every group (a catch-all)."""
    routes: list[dict[str, Any]] = [
        {"channel": "#all"},
        {"matchers": ['team="db"'], "channel": "#db"},
    ]
    assert channels(route_group(group({"team": "db"}), tenant(routes))) == [("#all", 0)]


def test_every_matcher_of_a_route_must_match() -> None:
    """A route's matchers are and-ed: one mismatch skips the route."""
    routes: list[dict[str, Any]] = [
        {"matchers": ['team="db"', 'env="prod"'], "channel": "#db-prod"}
    ]
    assert channels(route_group(group({"team": "db", "env": "prod"}), tenant(routes))) == [
        ("#db-prod", 0)
    ]
    assert channels(route_group(group({"team": "db", "env": "dev"}), tenant(routes))) == [
        (DEFAULT, None)
    ]


def test_group_labels_count_when_common_labels_lack_them() -> None:
    """Matching sees the group labels as well as the common labels."""
    routes: list[dict[str, Any]] = [{"matchers": ['team="db"'], "channel": "#db"}]
    routed = route_group(group(group_labels={"team": "db"}), tenant(routes))
    assert channels(routed) == [("#db", 0)]


def test_a_label_not_shared_by_every_alert_does_not_match() -> None:
    """Routing uses labels common to the group: a label only some alerts carry is absent."""
    alerts = tuple(
        Alert(f"fp{i}", Status.FIRING, {"alertname": "A", "team": team}, {}, None, None)
        for i, team in enumerate(["db", "web"])
    )
    mixed = AlertGroup(
        Source.ALERTMANAGER, "key", Status.FIRING, alerts, common_labels={"alertname": "A"}
    )
    routes: list[dict[str, Any]] = [{"matchers": ['team="db"'], "channel": "#db"}]
    assert channels(route_group(mixed, tenant(routes))) == [(DEFAULT, None)]


def test_duplicate_channels_collapse_into_one_target() -> None:
    """Two matching routes to one channel give one target: the first route's."""
    routes: list[dict[str, Any]] = [
        {"matchers": ['team="db"'], "channel": "#shared", "continue": True},
        {"matchers": ['env="prod"'], "channel": "#shared", "continue": True},
        {"matchers": ['env="prod"'], "channel": "#prod", "continue": True},
        {"channel": "#prod"},
    ]
    routed = route_group(group({"team": "db", "env": "prod"}), tenant(routes))
    assert channels(routed) == [("#shared", 0), ("#prod", 2)]


def test_route_to_the_default_channel_is_one_target() -> None:
    """A route naming the tenant's own channel gives that channel once, from the route."""
    routes: list[dict[str, Any]] = [
        {"matchers": ['team="db"'], "channel": DEFAULT, "locale": "it_IT"}
    ]
    (target,) = route_group(group({"team": "db"}), tenant(routes))
    assert (target.channel, target.route, target.locale) == (DEFAULT, 0, "it_IT")


@pytest.mark.parametrize(
    ("route_threshold", "tenant_threshold", "severity", "expected_level", "passes"),
    [
        (None, "warning_and_above", "warning", Severity.WARNING, True),
        (None, "warning_and_above", "info", Severity.WARNING, False),
        ("critical_only", "all", "error", Severity.CRITICAL, False),
        ("critical_only", "all", "critical", Severity.CRITICAL, True),
        ("all", "critical_only", "info", Severity.NONE, True),
        ("error", "all", "warning", Severity.ERROR, False),
        ("error", "critical_only", "error", Severity.ERROR, True),
        ("info", "critical_only", "bogus", Severity.INFO, True),
    ],
)
def test_route_threshold_overrides_the_tenant_threshold(
    route_threshold: str | None,
    tenant_threshold: str,
    severity: str,
    expected_level: Severity,
    passes: bool,
) -> None:
    """A route's threshold wins over the tenant's; without one the tenant's applies."""
    route: dict[str, Any] = {"matchers": ['team="db"'], "channel": "#db"}
    if route_threshold is not None:
        route["alert_threshold"] = route_threshold
    (target,) = route_group(group({"team": "db"}, severity), tenant([route], tenant_threshold))
    assert target.threshold is expected_level
    assert target.passes_threshold is passes


def test_targets_below_threshold_are_kept_but_marked() -> None:
    """Each channel gets its own threshold decision, and a failing one is still a target."""
    routes: list[dict[str, Any]] = [
        {"matchers": ['team="db"'], "channel": "#db", "continue": True},
        {"matchers": ['team="db"'], "channel": "#pager", "alert_threshold": "critical_only"},
    ]
    routed = route_group(group({"team": "db"}, "error"), tenant(routes))
    assert [(t.channel, t.passes_threshold) for t in routed] == [("#db", True), ("#pager", False)]


def test_route_locale_overrides_the_tenant_locale() -> None:
    """A route's locale is used for its channel; other channels use the tenant's."""
    routes: list[dict[str, Any]] = [
        {"matchers": ['team="db"'], "channel": "#db", "locale": "es_ES", "continue": True},
        {"matchers": ['team="db"'], "channel": "#db-fr"},
    ]
    routed = route_group(group({"team": "db"}), tenant(routes, locale="fr_FR"))
    assert [(t.channel, t.locale) for t in routed] == [("#db", "es_ES"), ("#db-fr", "fr_FR")]


def test_resolved_group_is_routed_like_it_fired() -> None:
    """A resolve goes to the same channels with the same threshold decision as its firing."""
    routes: list[dict[str, Any]] = [
        {"matchers": ['team="db"'], "channel": "#db", "alert_threshold": "critical_only"}
    ]
    firing = route_group(group({"team": "db"}, "critical"), tenant(routes))
    resolved = route_group(group({"team": "db"}, "critical", Status.RESOLVED), tenant(routes))
    assert firing == resolved
    assert resolved[0].passes_threshold


SEVERITIES = ["none", "info", "warning", "error", "critical"]
PASSING: dict[str, set[str]] = {
    "all": {"none", "info", "warning", "error", "critical"},
    "none": {"none", "info", "warning", "error", "critical"},
    "info": {"info", "warning", "error", "critical"},
    "warning": {"warning", "error", "critical"},
    "warning_and_above": {"warning", "error", "critical"},
    "error": {"error", "critical"},
    "critical": {"critical"},
    "critical_only": {"critical"},
}


@pytest.mark.parametrize(("threshold", "severity"), list(itertools.product(PASSING, SEVERITIES)))
def test_passes_threshold_for_every_threshold_and_severity(threshold: str, severity: str) -> None:
    """passes_threshold is true exactly when the group's severity reaches the threshold."""
    (target,) = route_group(group(severity=severity), tenant(threshold=threshold))
    assert target.passes_threshold is (severity in PASSING[threshold])


@pytest.mark.parametrize(
    ("severity_label", "threshold", "passes"),
    [
        (None, "warning_and_above", True),
        (None, "error", False),
        ("bogus", "warning", True),
        ("page", "critical_only", True),
        ("low", "warning_and_above", False),
    ],
)
def test_unknown_and_alias_severities_meet_thresholds_as_mapped(
    severity_label: str | None, threshold: str, passes: bool
) -> None:
    """Missing or unknown severities count as warning; aliases count as what they stand for."""
    (target,) = route_group(group(severity=severity_label), tenant(threshold=threshold))
    assert target.passes_threshold is passes


@pytest.mark.parametrize(
    ("threshold", "severity"),
    [
        ("all", Severity.NONE),
        ("warning_and_above", Severity.WARNING),
        ("critical_only", Severity.CRITICAL),
        ("none", Severity.NONE),
        ("info", Severity.INFO),
        ("warning", Severity.WARNING),
        ("error", Severity.ERROR),
        ("critical", Severity.CRITICAL),
    ],
)
def test_threshold_severity_table(threshold: str, severity: Severity) -> None:
    """Each threshold name stands for the lowest severity it lets through."""
    assert threshold_severity(threshold) is severity
