"""Governance: check a tenant's document against the policies of the ``governance`` section.

Pure functions, no I/O: each rule takes the policy, the tenant's effective
configuration and the document as it would be stored, and returns the
:class:`Violation` s with the key path and a reason a person can act on.
``ConfigManager`` runs them on every write of a tenant document and refuses the
write when any is found; ``validator`` applies the channel and quota rules to
the defaults a tenant inherits (``slack.default_channel``, ``tenants.defaults``).

Which values are checked, and why:

- Channels: only the ones the tenant *names* (its own ``slack_channel`` and
  every route's ``channel``). A tenant that names none uses the platform's
  default channel, which the configuration's own rules check.
- Quotas: the *effective* ones (the tenant's own over ``tenants.defaults``),
  because that is what the tenant gets; a plan change that leaves an inherited
  quota above the new plan's maximum is refused too.
- Mentions: templates are Jinja2 code, so whether a mention is rendered for a
  given alert cannot be decided from the source. Nor does any key let a tenant
  configure mentions per severity. What *is* enforceable is the threshold: a
  message is first posted to a channel only for alerts at or above that
  channel's threshold, so a template may carry a broadcast mention only if
  every threshold the tenant delivers at (its ``alert_threshold`` and each
  route's) reaches ``mentions.min_severity``; ``mentions.allowed: false``
  refuses them outright. The source is searched for the literal forms (Jinja
  comments excepted); a template that assembles a mention from pieces is not
  caught; and a group first posted at a high severity keeps its message edited
  (Slack does not notify edits) and may get a thread reply as it changes.
- Token: the stored form. ``ConfigManager`` encrypts a secret whenever a master
  key is configured, so a token can only be stored in clear without one; that
  is what ``require_encrypted_tokens`` refuses, per tenant change, even where
  ``security.encryption.required`` is off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from slack_tools.configs import security
from slack_tools.configs.schema import (
    ANY_PLAN,
    THRESHOLD_ALIASES,
    AppConfig,
    GovernanceConfig,
    MentionPolicy,
    Path,
    Severity,
    TenantConfig,
)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken policy: where in the tenant's document, and why."""

    path: Path
    reason: str

    def format(self) -> str:
        return f"{_shown(self.path)}: {self.reason}"


def _shown(path: Path) -> str:
    """``("routes", 2, "channel")`` → ``routes[2].channel``, as a person writes it."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def tenant_violations(
    policy: GovernanceConfig, tenant: TenantConfig, document: Mapping[str, Any]
) -> list[Violation]:
    """Every policy ``tenant`` breaks; ``document`` is its own stored content (secrets sealed)."""
    return [
        *channel_violations(policy.channel_patterns, tenant, document),
        *quota_violations(policy.max_quotas, tenant, document),
        *mention_violations(policy.mentions, tenant),
        *token_violations(policy.require_encrypted_tokens, document),
    ]


# --- channels -------------------------------------------------------------------------


def channel_allowed(patterns: Iterable[str], channel: str) -> bool:
    """Whether ``channel`` matches one of ``patterns`` in full (no patterns: any channel)."""
    patterns = tuple(patterns)
    return not patterns or any(re.fullmatch(pattern, channel) for pattern in patterns)


def _channel_reason(patterns: tuple[str, ...], channel: str) -> str:
    return (
        f"{channel!r} does not match any allowed pattern (governance.channel_patterns): "
        + ", ".join(patterns)
    )


def channel_violations(
    patterns: tuple[str, ...], tenant: TenantConfig, document: Mapping[str, Any]
) -> Iterator[Violation]:
    """The channels the tenant names that no pattern allows."""
    named: list[tuple[Path, str]] = []
    if "slack_channel" in document:
        named.append((("slack_channel",), tenant.slack_channel))
    named.extend((("routes", i, "channel"), route.channel) for i, route in enumerate(tenant.routes))
    for path, channel in named:
        if not channel_allowed(patterns, channel):
            yield Violation(path, _channel_reason(patterns, channel))


# --- quotas ---------------------------------------------------------------------------


def plan_maximums(max_quotas: Mapping[str, Mapping[str, int]], plan: str) -> Mapping[str, int]:
    """The maximum of each quota on ``plan``: its own entry, else ``*``'s, else none."""
    return max_quotas.get(plan, max_quotas.get(ANY_PLAN, {}))


def quota_excesses(
    max_quotas: Mapping[str, Mapping[str, int]], plan: str, quotas: Mapping[str, int]
) -> Iterator[tuple[str, int, int]]:
    """``(quota, value, maximum)`` for every quota above ``plan``'s maximum, by name."""
    maximums = plan_maximums(max_quotas, plan)
    for name, value in sorted(quotas.items()):
        maximum = maximums.get(name)
        if maximum is not None and value > maximum:
            yield name, value, maximum


def _plan_label(max_quotas: Mapping[str, Mapping[str, int]], plan: str) -> str:
    return f"plan {plan!r}" if plan in max_quotas else f"plan {plan!r} (maximums of '*')"


def quota_violations(
    max_quotas: Mapping[str, Mapping[str, int]],
    tenant: TenantConfig,
    document: Mapping[str, Any],
) -> Iterator[Violation]:
    """The tenant's effective quotas above its plan's maximum."""
    own = document.get("quotas")
    own = own if isinstance(own, Mapping) else {}
    for name, value, maximum in quota_excesses(max_quotas, tenant.plan, tenant.quotas):
        source = "" if name in own else " (inherited from tenants.defaults.quotas)"
        yield Violation(
            ("quotas", name),
            f"{value}{source} is above the maximum {maximum} of "
            f"{_plan_label(max_quotas, tenant.plan)} (governance.max_quotas): "
            f"set quotas.{name} to {maximum} or less, or change the plan",
        )


# --- mentions -------------------------------------------------------------------------

# Slack's special mentions (<!here>, <!channel|@channel>) and the plain words Slack links
# when names are linked; "ops@here.example" is an address, not a mention.
_MENTION = re.compile(
    r"<!(?:channel|here|everyone)(?:\|[^>]*)?>|(?<![\w@.])@(?:channel|here|everyone)\b",
    re.IGNORECASE,
)
_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)


def find_mention(source: str) -> str | None:
    """The first broadcast mention written in a template's source, if any (comments skipped)."""
    found = _MENTION.search(_JINJA_COMMENT.sub("", source))
    return found.group(0) if found else None


def threshold_severity(threshold: str) -> Severity:
    """``critical_only`` → critical, ``all`` → none, a severity name → itself."""
    return THRESHOLD_ALIASES.get(threshold) or Severity(threshold)


def lowest_threshold(tenant: TenantConfig) -> tuple[Path, Severity]:
    """The lowest severity the tenant delivers at, and the key that sets it."""
    lowest: tuple[Path, Severity] = (
        ("alert_threshold",),
        threshold_severity(tenant.alert_threshold),
    )
    for index, route in enumerate(tenant.routes):
        if route.alert_threshold is None:
            continue  # the route uses the tenant's threshold, already counted
        severity = threshold_severity(route.alert_threshold)
        if severity.rank < lowest[1].rank:
            lowest = (("routes", index, "alert_threshold"), severity)
    return lowest


def _what_passes(lowest: Severity) -> str:
    return "every alert" if lowest is Severity.NONE else f"{lowest.value} alerts"


def mention_violations(policy: MentionPolicy, tenant: TenantConfig) -> Iterator[Violation]:
    """The tenant's templates that carry a broadcast mention the policy does not allow."""
    where, lowest = lowest_threshold(tenant)
    for name, source in sorted(tenant.templates.items()):
        mention = find_mention(source)
        if mention is None:
            continue
        path: Path = ("templates", name)
        if not policy.allowed:
            yield Violation(
                path,
                f"contains the broadcast mention {mention!r}, and broadcast mentions are not "
                "allowed in tenant templates (governance.mentions.allowed)",
            )
        elif lowest.rank < policy.min_severity.rank:
            yield Violation(
                path,
                f"contains the broadcast mention {mention!r}, allowed only when every message "
                f"is about alerts of severity {policy.min_severity.value} or above "
                f"(governance.mentions.min_severity), but {_shown(where)} lets "
                f"{_what_passes(lowest)} through: raise it or remove the mention",
            )


# --- tokens ---------------------------------------------------------------------------


def token_violations(required: bool, document: Mapping[str, Any]) -> Iterator[Violation]:
    """A token stored in clear when the policy requires it encrypted (never quoting it)."""
    token = document.get("slack_bot_token")
    if required and token is not None and not security.is_encrypted(token):
        yield Violation(
            ("slack_bot_token",),
            "would be stored in clear text, and governance.require_encrypted_tokens requires "
            "it encrypted (enc:…): configure a master key (SLACK_TOOLS_MASTER_KEYS or "
            "security.encryption.key_file), or remove the token to use the global one",
        )


# --- what tenants inherit -------------------------------------------------------------


def default_violations(config: AppConfig) -> Iterator[Violation]:
    """The platform defaults a tenant inherits that its own policies would refuse.

    Paths are application keys: a tenant naming no channel posts to
    ``slack.default_channel``, and one setting no quota gets ``tenants.defaults``'.
    """
    policy = config.governance
    channel = config.slack.default_channel
    if not channel_allowed(policy.channel_patterns, channel):
        yield Violation(
            ("slack", "default_channel"), _channel_reason(policy.channel_patterns, channel)
        )
    defaults = config.tenants.defaults
    for name, value, maximum in quota_excesses(policy.max_quotas, defaults.plan, defaults.quotas):
        yield Violation(
            ("tenants", "defaults", "quotas", name),
            f"{value} is above the maximum {maximum} of "
            f"{_plan_label(policy.max_quotas, defaults.plan)}, the default plan "
            "(governance.max_quotas)",
        )
