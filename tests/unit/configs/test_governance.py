"""Governance rules: channels, quotas per plan, broadcast mentions and token storage."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slack_tools.configs import governance
from slack_tools.configs.config_loader import packaged_file, read_yaml_layer
from slack_tools.configs.governance import Violation
from slack_tools.configs.schema import (
    AppConfig,
    EnvName,
    GovernanceConfig,
    MentionPolicy,
    Severity,
    TenantConfig,
)
from slack_tools.configs.validator import Level, RuleContext, rule_issues
from tests.helpers import assert_no_secret

TOKEN = "xoxb-1234567890-governance-token-never-shown"
ALERTS_ONLY = ("^#alerts-.*",)
QUOTAS = {"alerts_per_minute": 6000, "messages_per_hour": 3600}


def tenant(**values: Any) -> TenantConfig:
    """An effective tenant configuration: the defaults with ``values`` on top."""
    base: dict[str, Any] = {
        "slack_channel": "#alerts",
        "alert_threshold": "all",
        "locale": "fr_FR",
        "timezone": "UTC",
        "plan": "standard",
        "quotas": QUOTAS,
        "isolation": "logical",
    }
    return TenantConfig.model_validate({**base, **values})


def route(channel: str, threshold: str | None = None) -> dict[str, Any]:
    """A route to ``channel`` (with its own threshold if given)."""
    found: dict[str, Any] = {"matchers": ['team="db"'], "channel": channel}
    if threshold is not None:
        found["alert_threshold"] = threshold
    return found


def paths(violations: Any) -> list[tuple[Any, ...]]:
    return [v.path for v in violations]


# --- the policy section ---------------------------------------------------------------


def test_default_policy_allows_everything() -> None:
    """With the schema's defaults no tenant, however configured, breaks a policy."""
    anything = tenant(
        slack_channel="#random",
        routes=[route("#general", "info")],
        plan="gold",
        quotas={"alerts_per_minute": 10**9},
        templates={"group": "<!channel> {{ 1 }}"},
    )
    document = {"slack_channel": "#random", "slack_bot_token": TOKEN}
    assert governance.tenant_violations(GovernanceConfig(), anything, document) == []


def packaged_policy(env: EnvName) -> GovernanceConfig:
    """The governance section of a packaged environment file."""
    layer, _ = read_yaml_layer(packaged_file(env), {}, label=env.value)
    assert layer is not None
    found, section = layer.get(("governance",))
    assert found
    return GovernanceConfig.model_validate(section)


def test_packaged_policies_are_permissive_in_dev_and_strict_elsewhere() -> None:
    """dev sets no policy; staging enforces exactly production's, so what passes there passes."""
    assert packaged_policy(EnvName.DEV) == GovernanceConfig()
    production = packaged_policy(EnvName.PRODUCTION)
    assert packaged_policy(EnvName.STAGING) == production
    assert production.require_encrypted_tokens
    assert production.mentions.min_severity is Severity.CRITICAL
    assert governance.plan_maximums(production.max_quotas, "any plan")
    for allowed in ("#alerts", "#ops-alerts", "#payments-oncall", "#general-ops", "C0123ABCD"):
        assert governance.channel_allowed(production.channel_patterns, allowed), allowed
    for refused in ("#general", "#random", "#announcements", "general", "c0123abcd"):
        assert not governance.channel_allowed(production.channel_patterns, refused), refused


def test_an_invalid_channel_pattern_is_refused_when_loaded() -> None:
    """A pattern that is not a regular expression is a schema error at its index."""
    with pytest.raises(ValueError, match="expected a regular expression") as caught:
        GovernanceConfig.model_validate({"channel_patterns": ["^#ok", "(unclosed"]})
    assert "channel_patterns.1" in str(caught.value)


def test_plan_maximums_must_be_positive() -> None:
    """A maximum quota of 0 or less is a schema error (a quota is at least 1)."""
    with pytest.raises(ValueError, match="max_quotas"):
        GovernanceConfig.model_validate({"max_quotas": {"free": {"alerts_per_minute": 0}}})


# --- channels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "channel", "allowed"),
    [
        ((), "#anything", True),
        (ALERTS_ONLY, "#alerts-db", True),
        (ALERTS_ONLY, "#alerts", False),
        (ALERTS_ONLY, "#xalerts-db", False),
        (("alerts",), "#alerts", False),  # in full, not found inside
        (("#alerts",), "#alerts-db", False),
        (("^#alerts$", "^C[A-Z0-9]+$"), "C0123ABCD", True),
        (("^#alerts$", "^C[A-Z0-9]+$"), "#ops", False),
    ],
)
def test_channel_must_match_a_pattern_in_full(
    patterns: tuple[str, ...], channel: str, allowed: bool
) -> None:
    """A channel is allowed when a pattern matches all of it, or when there is no pattern."""
    assert governance.channel_allowed(patterns, channel) is allowed


def test_route_channel_violation_names_the_route_and_the_patterns() -> None:
    """A refused route channel is reported at routes[i].channel with the allowed patterns."""
    routes = [route("#alerts-db"), route("#alerts-web"), route("#random")]
    found = list(governance.channel_violations(ALERTS_ONLY, tenant(routes=routes), {}))
    assert [v.format() for v in found] == [
        (
            "routes[2].channel: '#random' does not match any allowed pattern "
            "(governance.channel_patterns): ^#alerts-.*"
        )
    ]


def test_inherited_default_channel_is_not_the_tenants_choice() -> None:
    """slack_channel is checked only when the tenant's document sets it."""
    inherited = tenant(slack_channel="#general")
    assert list(governance.channel_violations(ALERTS_ONLY, inherited, {})) == []
    named = list(governance.channel_violations(ALERTS_ONLY, inherited, {"slack_channel": "x"}))
    assert paths(named) == [("slack_channel",)]


channels = st.from_regex(r"#[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)


@given(names=st.lists(st.one_of(channels, channels.map(lambda c: "#alerts-" + c[1:])), max_size=6))
def test_exactly_the_route_channels_outside_the_patterns_are_reported(names: list[str]) -> None:
    """Every route channel not starting with '#alerts-' is reported, and no other."""
    config = tenant(routes=[route(name) for name in names])
    found = paths(governance.channel_violations(ALERTS_ONLY, config, {}))
    expected = [
        ("routes", i, "channel") for i, n in enumerate(names) if not n.startswith("#alerts-")
    ]
    assert found == expected


@given(channel=channels)
def test_a_channel_is_allowed_by_its_own_escaped_name(channel: str) -> None:
    """Any valid channel name, escaped, is a pattern allowing exactly that channel."""
    assert governance.channel_allowed((re.escape(channel),), channel)
    assert not governance.channel_allowed((re.escape(channel),), channel + "x")


# --- quotas ---------------------------------------------------------------------------

MAXIMUMS = {"free": {"alerts_per_minute": 100}, "*": {"alerts_per_minute": 6000}}


@pytest.mark.parametrize(
    ("plan", "value", "violates"),
    [
        ("free", 100, False),
        ("free", 101, True),
        ("gold", 6000, False),  # no entry of its own: '*'
        ("gold", 6001, True),
    ],
)
def test_quota_is_refused_only_above_the_plans_maximum(
    plan: str, value: int, violates: bool
) -> None:
    """A quota equal to its plan's maximum passes; one above is refused."""
    config = tenant(plan=plan, quotas={**QUOTAS, "alerts_per_minute": value})
    document = {"quotas": {"alerts_per_minute": value}}
    found = list(governance.quota_violations(MAXIMUMS, config, document))
    assert paths(found) == ([("quotas", "alerts_per_minute")] if violates else [])


def test_quota_without_a_maximum_is_not_limited() -> None:
    """A quota the plan names no maximum for, or a plan with no entry and no '*', is free."""
    config = tenant(plan="free", quotas={"alerts_per_minute": 100, "messages_per_hour": 10**9})
    assert list(governance.quota_violations(MAXIMUMS, config, {})) == []
    unlisted = tenant(plan="gold", quotas={"alerts_per_minute": 10**9})
    assert list(governance.quota_violations({"free": {"alerts_per_minute": 1}}, unlisted, {})) == []


def test_inherited_quota_above_the_new_plan_says_where_it_comes_from() -> None:
    """Moving to a smaller plan while keeping the default quota is refused, saying why."""
    config = tenant(plan="free")
    [found] = governance.quota_violations(MAXIMUMS, config, {"plan": "free"})
    assert found.format() == (
        "quotas.alerts_per_minute: 6000 (inherited from tenants.defaults.quotas) is above the "
        "maximum 100 of plan 'free' (governance.max_quotas): set quotas.alerts_per_minute to "
        "100 or less, or change the plan"
    )


QUOTA_NAMES = ("alerts_per_minute", "messages_per_hour", "admin_calls_per_minute", "alerts_per_day")


@given(
    quotas=st.dictionaries(st.sampled_from(QUOTA_NAMES), st.integers(1, 200), min_size=1),
    maximums=st.dictionaries(st.sampled_from(QUOTA_NAMES), st.integers(1, 200)),
)
def test_exactly_the_quotas_above_their_maximum_are_reported(
    quotas: dict[str, int], maximums: dict[str, int]
) -> None:
    """A quota is reported if and only if its plan names a maximum and the quota exceeds it."""
    config = tenant(plan="p", quotas=quotas)
    found = governance.quota_violations({"p": maximums}, config, {"quotas": quotas})
    expected = sorted(n for n, v in quotas.items() if n in maximums and v > maximums[n])
    assert [path[1] for path in paths(found)] == expected


# --- mentions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "mention"),
    [
        ("<!channel> down", "<!channel>"),
        ("{{ x }} <!here|here>", "<!here|here>"),
        ("<!everyone>", "<!everyone>"),
        ("cc @here", "@here"),
        ("cc @Channel!", "@Channel"),
        ("@everyone", "@everyone"),
        ("mail ops@here.example", None),
        ("@hereafter", None),
        ("<@U0123ABC> and <#C0123ABC>", None),
        ("{# never @here #}quiet", None),
        ("<!date^1700000000^{date}|x>", None),
    ],
)
def test_broadcast_mentions_are_found_in_template_sources(source: str, mention: str | None) -> None:
    """Slack's special mentions and the linked words are found; addresses and users are not."""
    assert governance.find_mention(source) == mention


@pytest.mark.parametrize(
    ("threshold", "routes", "minimum", "violates"),
    [
        ("critical_only", [], Severity.CRITICAL, False),
        ("critical", [], Severity.CRITICAL, False),
        ("error", [], Severity.CRITICAL, True),
        ("warning_and_above", [], Severity.WARNING, False),
        ("all", [], Severity.INFO, True),
        ("all", [], Severity.NONE, False),
        ("critical", [route("#a", "warning")], Severity.CRITICAL, True),
        ("critical", [route("#a")], Severity.CRITICAL, False),  # inherits the tenant's
        ("critical", [route("#a", "critical_only")], Severity.CRITICAL, False),
    ],
)
def test_mention_is_allowed_only_when_every_threshold_reaches_the_minimum(
    threshold: str, routes: list[dict[str, Any]], minimum: Severity, violates: bool
) -> None:
    """A template may mention @here only if no channel of the tenant takes lesser alerts."""
    config = tenant(alert_threshold=threshold, routes=routes, templates={"group": "<!here>"})
    found = list(governance.mention_violations(MentionPolicy(min_severity=minimum), config))
    assert paths(found) == ([("templates", "group")] if violates else [])


def test_mention_violation_names_the_threshold_that_lets_lesser_alerts_through() -> None:
    """The reason names the mention, the minimum and the route whose threshold is too low."""
    config = tenant(
        alert_threshold="critical",
        routes=[route("#a"), route("#b", "warning")],
        templates={"group.fr": "{{ x }} <!channel>", "digest": "no mention"},
    )
    [found] = governance.mention_violations(MentionPolicy(min_severity=Severity.CRITICAL), config)
    assert found.format() == (
        "templates.group.fr: contains the broadcast mention '<!channel>', allowed only when "
        "every message is about alerts of severity critical or above "
        "(governance.mentions.min_severity), but routes[1].alert_threshold lets warning "
        "alerts through: raise it or remove the mention"
    )


def test_mentions_not_allowed_are_refused_at_any_threshold() -> None:
    """With mentions.allowed false, even a critical-only tenant cannot mention @channel."""
    config = tenant(alert_threshold="critical_only", templates={"reply": "@channel"})
    [found] = governance.mention_violations(MentionPolicy(allowed=False), config)
    assert found.path == ("templates", "reply")
    assert "not allowed in tenant templates (governance.mentions.allowed)" in found.reason


@given(
    threshold=st.sampled_from(list(Severity)),
    minimum=st.sampled_from(list(Severity)),
    mention=st.booleans(),
)
def test_mention_rule_follows_the_severity_order(
    threshold: Severity, minimum: Severity, mention: bool
) -> None:
    """A violation exactly when the template mentions and the threshold is below the minimum."""
    config = tenant(alert_threshold=threshold.value, templates={"group": "<!here>" * mention})
    found = list(governance.mention_violations(MentionPolicy(min_severity=minimum), config))
    assert bool(found) is (mention and threshold.rank < minimum.rank)


# --- tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("required", "token", "violates"),
    [
        (True, TOKEN, True),
        (True, "enc:v1:k1:c2VhbGVk", False),
        (True, None, False),
        (False, TOKEN, False),
    ],
)
def test_token_in_clear_is_refused_when_encryption_is_required(
    required: bool, token: str | None, violates: bool
) -> None:
    """Only a token stored in clear breaks require_encrypted_tokens, and it is never quoted."""
    document = {} if token is None else {"slack_bot_token": token}
    found = list(governance.token_violations(required, document))
    assert paths(found) == ([("slack_bot_token",)] if violates else [])
    for violation in found:
        assert_no_secret(violation.format(), TOKEN)


# --- all together, and what tenants inherit --------------------------------------------


def test_every_violation_of_a_tenant_is_reported_at_once() -> None:
    """One check returns the channel, quota, mention and token violations together."""
    policy = GovernanceConfig.model_validate(
        {
            "channel_patterns": ALERTS_ONLY,
            "max_quotas": MAXIMUMS,
            "mentions": {"min_severity": "critical"},
            "require_encrypted_tokens": True,
        }
    )
    config = tenant(
        slack_channel="#general",
        plan="free",
        templates={"group": "<!here>"},
        slack_bot_token=TOKEN,
    )
    document = {"slack_channel": "#general", "plan": "free", "slack_bot_token": TOKEN}
    found = governance.tenant_violations(policy, config, document)
    assert paths(found) == [
        ("slack_channel",),
        ("quotas", "alerts_per_minute"),
        ("templates", "group"),
        ("slack_bot_token",),
    ]
    assert all(isinstance(v, Violation) for v in found)


def strict_app(**values: Any) -> AppConfig:
    """A staging configuration with channel and quota policies, and ``values`` on top."""
    data: dict[str, Any] = {
        "environment": "staging",
        "governance": {"channel_patterns": ALERTS_ONLY, "max_quotas": MAXIMUMS},
        **values,
    }
    return AppConfig.model_validate(data)


def governed(config: AppConfig) -> dict[tuple[Any, ...], Level]:
    """The levels of the rule issues about governed defaults."""
    context = RuleContext({}, {}, has_master_key=True)
    keys = {("slack", "default_channel"), ("tenants", "defaults", "quotas", "alerts_per_minute")}
    return {i.path: i.level for i in rule_issues(config, context) if i.path in keys}


def test_defaults_tenants_inherit_must_follow_the_policies() -> None:
    """Outside dev, a default channel or default quota the policies refuse is an error."""
    config = strict_app(
        slack={"default_channel": "#general"},
        tenants={"defaults": {"plan": "free", "quotas": {"alerts_per_minute": 101}}},
    )
    assert governed(config) == {
        ("slack", "default_channel"): Level.ERROR,
        ("tenants", "defaults", "quotas", "alerts_per_minute"): Level.ERROR,
    }
    compliant = strict_app(
        slack={"default_channel": "#alerts-all"},
        tenants={"defaults": {"plan": "free", "quotas": {"alerts_per_minute": 100}}},
    )
    assert governed(compliant) == {}


def test_defaults_outside_the_policies_only_warn_in_dev() -> None:
    """In dev the same rule is a warning, like the environment's other rules."""
    config = strict_app(environment=EnvName.DEV.value, slack={"default_channel": "#general"})
    assert governed(config) == {("slack", "default_channel"): Level.WARNING}
