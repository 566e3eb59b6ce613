"""The tenant's message quotas, checked before a new message is sent.

Quotas named ``messages_per_<unit>`` count Slack messages that start something
new: a post or a digest (one message, however many groups it holds). An edit of a
message already sent, or a reply in its thread, is never held: a resolve of an
alert that was notified always goes through (DESIGN "Decisions"). Alert quotas
are counted where alerts arrive, in ingest.
"""

from __future__ import annotations

from collections.abc import Mapping

from slack_tools.configs.quotas import MESSAGES, QuotaCounter, QuotaUse, resource_quotas
from slack_tools.service.dispatcher.planning import Action, Plan


async def messages_over_quota(
    counter: QuotaCounter, tenant_id: str, limits: Mapping[str, int], plan: Plan
) -> list[QuotaUse]:
    """Count the plan's message against each message quota; the uses it does not fit."""
    if plan.action in (Action.UPDATE, Action.REPLY):
        return []
    over = []
    for quota in resource_quotas(limits, MESSAGES):
        use = await counter.take(tenant_id, quota)
        if not use.allowed:
            over.append(use)
    return over
