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


def _starts_a_message(plan: Plan) -> bool:
    return plan.action not in (Action.UPDATE, Action.REPLY)


async def full_message_quotas(
    counter: QuotaCounter, tenant_id: str, limits: Mapping[str, int], plan: Plan
) -> list[QuotaUse]:
    """The message quotas with no room left for the plan's message.

    Only looked at here: the message is counted once Slack has it (:func:`count_message`),
    so a send that fails or is told to wait spends nothing.
    """
    if not _starts_a_message(plan):
        return []
    full = []
    for quota in resource_quotas(limits, MESSAGES):
        use = await counter.peek(tenant_id, quota)
        if use.used >= quota.limit:
            full.append(use)
    return full


async def count_message(
    counter: QuotaCounter, tenant_id: str, limits: Mapping[str, int], plan: Plan
) -> None:
    """Count a message Slack accepted against the tenant's message quotas."""
    if _starts_a_message(plan):
        for quota in resource_quotas(limits, MESSAGES):
            await counter.take(tenant_id, quota)
