"""Governance: the policies every tenant change is checked against (``governance`` section).

Each policy is off or permissive by default; the packaged staging and production
files turn them on. The checks themselves are in ``configs/governance.py``.
Policies are set in files or the environment, never in the global overrides
document: a rule that the admin API could loosen at run time would not govern.
"""

from __future__ import annotations

from pydantic import Field

from slack_tools.configs.schema.types import (
    FrozenDict,
    Pattern,
    PlanQuotaLimits,
    Section,
    Severity,
)

# A plan without an entry of its own in ``max_quotas`` takes this one's.
ANY_PLAN = "*"


class MentionPolicy(Section):
    """When a tenant's templates may contain a broadcast mention (``<!channel>``, ``@here``, …)."""

    allowed: bool = Field(
        True,
        description=(
            "Whether a tenant template may contain a broadcast mention at all (`<!channel>`, "
            "`<!here>`, `<!everyone>`, `@channel`, `@here`, `@everyone`)."
        ),
    )
    min_severity: Severity = Field(
        Severity.NONE,
        description=(
            "A tenant template may contain a broadcast mention only if every threshold the "
            "tenant delivers at (its alert_threshold and each route's) is at least this "
            "severity, so that no message about a lesser alert can carry it; none: any."
        ),
    )


class GovernanceConfig(Section):
    """Policies checked on every change of a tenant's document; a violation refuses it."""

    channel_patterns: tuple[Pattern, ...] = Field(
        (),
        description=(
            "Regular expressions; every channel a tenant names (slack_channel, each route's "
            "channel) and slack.default_channel must match one in full. Empty: any channel."
        ),
    )
    max_quotas: PlanQuotaLimits = Field(
        default_factory=FrozenDict,
        description=(
            "Highest quota per plan (plan → quota name → maximum); a tenant's effective quotas "
            "may not exceed its plan's. The plan '*' applies to plans without an entry; a quota "
            "without a maximum is not limited. Empty: no maximum."
        ),
    )
    mentions: MentionPolicy = MentionPolicy()
    require_encrypted_tokens: bool = Field(
        False,
        description=(
            "A tenant's slack_bot_token must be stored encrypted (enc:v1:…): without a master "
            "key, a tenant change that sets or keeps a token is refused."
        ),
    )
