"""The dispatcher: claim deliveries, render them, pace them, send them, record them.

Each cycle takes the channels with ready work (one entry per channel, oldest
first, round-robin across tenants) and handles each channel as one unit of work:

    claim → load the groups → tenant, token and breaker → plan (post, edit, reply,
    digest) → pace → send → record

Nothing waits in-process: work that may not go yet (pacing, an open breaker, a
429, a retry) is given back to the outbox with the time it may go. A channel that
holds more than its pace can send within ``digest_after_seconds`` gets one digest
message for all of its pending groups instead of a queue of single messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError

from slack_tools.alerts.models import SlackMessage
from slack_tools.configs import ConfigRuntime
from slack_tools.configs.circuit_breaker import (
    BreakerRegistry,
    BreakerState,
    RetryPolicy,
)
from slack_tools.configs.localization import Catalogs
from slack_tools.configs.metrics import ServiceMetrics
from slack_tools.configs.quotas import MemoryQuotaCounter, QuotaCounter, QuotaUse
from slack_tools.configs.schema import AppConfig, TenantConfig
from slack_tools.configs.templates import TemplateEngine
from slack_tools.errors import SlackToolsError
from slack_tools.service.dispatcher.breaker_call import BreakerCall
from slack_tools.service.dispatcher.ledger import Ledger
from slack_tools.service.dispatcher.pacing import SharedLimiter
from slack_tools.service.dispatcher.planning import (
    Action,
    Budgets,
    Plan,
    needs_new_message,
    pacing_requests,
    plan_delivery,
)
from slack_tools.service.dispatcher.quotas import count_message, full_message_quotas
from slack_tools.slack.client import Outcome, Posted, SlackCallError, SlackClient, workspace_of
from slack_tools.slack.ratelimit import (
    RateLimiter,
    channel_posts_key,
    workspace_posts_key,
    workspace_updates_key,
)
from slack_tools.storage import Database
from slack_tools.storage import delivery as outbox
from slack_tools.storage.delivery.dispatch import ready_count

log = structlog.get_logger(__name__)

DIGEST_MAX_GROUPS = 45  # a digest stays under Slack's 50 blocks with its header lines
MIN_CYCLE_SECONDS = 0.02
RECORD_RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 4.0)
NOT_BEFORE_LIMIT = 10_000
# How often a strict tenant's database with no work, and not woken for, is read again
# (for rows queued by other instances, or given back for later).
STRICT_IDLE_SCAN_SECONDS = 1.0


class Dispatcher:
    """Delivers pending notifications until stopped."""

    def __init__(
        self,
        runtime: ConfigRuntime,
        client: SlackClient,
        catalogs: Catalogs,
        metrics: ServiceMetrics,
        *,
        templates: TemplateEngine | None = None,
        limiter: RateLimiter | None = None,
        default_token: Callable[[], str | None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        quotas: QuotaCounter | None = None,
    ) -> None:
        self.runtime = runtime
        self.client = client
        self.catalogs = catalogs
        self.templates = templates
        self.metrics = metrics
        self.limiter = SharedLimiter(limiter)
        self.default_token = default_token
        self.clock = clock
        self.quotas = quotas or MemoryQuotaCounter()
        self.owner = f"{uuid.uuid4().hex[:12]}"
        # Each delivery is claimed and recorded in the database of its tenant.
        self.ledger = Ledger(runtime.database_for, self.owner, clock)
        config = runtime.config
        self.breakers = BreakerRegistry(
            config.resilience.breaker, on_transition=self._breaker_moved
        )
        self._wake = asyncio.Event()
        self._in_flight: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._tenant_load: dict[str, int] = defaultdict(int)
        self._not_before: dict[tuple[str, str], float] = {}
        self.last_cycle: float | None = None
        self.stopping = False
        # The strict tenants whose database could not be read (None: the shared one),
        # so that an outage is logged when it starts and ends, not at every cycle.
        self.unreachable: set[str | None] = set()
        # Strict tenants' databases are read when woken for them, while they have work,
        # and else once per STRICT_IDLE_SCAN_SECONDS: a cycle does not read every one.
        self._next_scan: dict[str, float] = {}
        self._woken: set[str] = set()
        self._woken_all = False
        self._woken_lock = threading.Lock()

    # --- the loop ------------------------------------------------------------------------

    def wake(self, tenant_id: str | None = None) -> None:
        """New work was queued here (for ``tenant_id``; None: anywhere): look now instead
        of at the next poll."""
        with self._woken_lock:
            if tenant_id is None:
                self._woken_all = True
            else:
                self._woken.add(tenant_id)
        self._wake.set()

    def _strict_due(self, strict: list[str]) -> list[str]:
        """The strict tenants whose database this cycle reads."""
        with self._woken_lock:
            woken, self._woken = self._woken, set()
            every, self._woken_all = self._woken_all, False
        now = time.monotonic()
        return [t for t in strict if every or t in woken or self._next_scan.get(t, 0.0) <= now]

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until ``stop`` is set; then finish the sends in flight."""
        while not stop.is_set():
            started = time.monotonic()
            # Cleared before the cycle, not after: a wake-up that arrives while the cycle
            # runs (a send finished, a channel's second is up) must start the next one.
            self._wake.clear()
            try:
                await self.cycle()
            except (SlackToolsError, SQLAlchemyError) as exc:  # database away: say so, go on
                log.warning("dispatcher.cycle_failed", error=type(exc).__name__)
            except Exception:  # a bug in one cycle must not stop delivery for good
                log.exception("dispatcher.cycle_crashed")
            self.last_cycle = time.time()
            self.metrics.dispatcher_heartbeat.set(self.last_cycle)
            # Wake-ups (each accepted request, each finished send) are coalesced: under load
            # one look per MIN_CYCLE_SECONDS, not one database query per request.
            await asyncio.sleep(max(0.0, MIN_CYCLE_SECONDS - (time.monotonic() - started)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._first(stop.wait(), self._wake.wait()),
                    timeout=self.runtime.config.delivery.poll_seconds,
                )
        self.stopping = True

    @staticmethod
    async def _first(*waits: object) -> None:
        tasks = [asyncio.ensure_future(w) for w in waits]  # type: ignore[call-overload]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()

    async def drain(self, grace_seconds: float) -> None:
        """Wait for the sends in flight (SIGTERM); cancel what outlives the grace period."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    async def cycle(self) -> int:
        """Start sending to every channel that has ready work and capacity; returns how many."""
        config = self.runtime.config
        settings = config.delivery
        now = self.clock()
        saturated = [
            t for t, load in self._tenant_load.items() if load >= settings.tenant_concurrency
        ]
        now_monotonic = time.monotonic()
        if len(self._not_before) > NOT_BEFORE_LIMIT:  # forget the pacing that has passed
            self._not_before = {k: t for k, t in self._not_before.items() if t > now_monotonic}
        # A channel that has just posted keeps its rows ready while it waits for its next
        # second; the channels skipped below must not take the room of those that can go.
        skipped = len(self._in_flight) + sum(
            1 for t in self._not_before.values() if t > now_monotonic
        )
        works = await asyncio.to_thread(
            self._ready, now, max(settings.concurrency * 4, 64) + skipped, saturated
        )
        started = 0
        for work in _round_robin(works):
            if len(self._tasks) >= settings.concurrency:
                break
            started += self._start(work, counted=True)
        return started

    def _start(self, work: outbox.ChannelWork, *, counted: bool) -> bool:
        """Start sending to the channel if it is idle, due, and within the concurrency limits.

        ``counted``: ``work.ready`` was just counted; otherwise the claim counts again.
        """
        settings = self.runtime.config.delivery
        key = (work.tenant_id, work.channel)
        if key in self._in_flight or self._not_before.get(key, 0.0) > time.monotonic():
            return False  # busy, or paced: claiming now would only give the rows back
        if len(self._tasks) >= settings.concurrency:
            return False
        if self._tenant_load[work.tenant_id] >= settings.tenant_concurrency:
            return False
        self._in_flight.add(key)
        self._tenant_load[work.tenant_id] += 1
        task = asyncio.create_task(self._channel(work, counted=counted))
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._finished, key=key))
        return True

    def _second_up(self, work: outbox.ChannelWork) -> None:
        """A channel with more work has its next second: send now, without waiting for a cycle.

        A cycle would first have to run (they are spaced by ``MIN_CYCLE_SECONDS``) and ask
        the database for every ready channel; each such wait is time the channel's second
        goes unused, which is what keeps a busy channel below its pace.
        """
        if self.stopping or not self._start(work, counted=False):
            self.wake(work.tenant_id)

    def _finished(self, task: asyncio.Task[None], *, key: tuple[str, str]) -> None:
        self._tasks.discard(task)
        self._in_flight.discard(key)
        self._tenant_load[key[0]] -= 1
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "dispatcher.channel_failed", tenant=key[0], error=type(task.exception()).__name__
            )
        self._wake.set()  # capacity freed: look for more now

    def _ready(self, now: datetime, limit: int, saturated: list[str]) -> list[outbox.ChannelWork]:
        """The channels with ready work in every database, oldest first, at most ``limit``.

        The shared database first, then each strict tenant's own (the registry as last
        read: a tenant created by another process is seen after the next refresh). A
        database that cannot be read is skipped and logged: the others still deliver.
        """
        databases = self.runtime.databases
        strict = databases.strict_ids()
        works: list[outbox.ChannelWork] = []
        skip = set(saturated)
        # The shared database never holds a strict tenant's deliveries: any found there
        # would be claimed in the tenant's own database, so they are not offered.
        works += self._read_ready(None, databases.shared, now, limit, [*saturated, *strict])
        for tenant_id in self._strict_due(strict):
            if tenant_id in skip:  # busy at its limit: read it again when it is not
                with self._woken_lock:
                    self._woken.add(tenant_id)
                continue
            found = self._read_ready(
                tenant_id, functools.partial(databases.for_tenant, tenant_id), now, limit, []
            )
            found = [w for w in found if w.tenant_id == tenant_id]
            if found:  # busy: read again next cycle
                self._next_scan.pop(tenant_id, None)
            else:
                self._next_scan[tenant_id] = time.monotonic() + STRICT_IDLE_SCAN_SECONDS
            works += found
        self.unreachable &= {None, *strict}  # forget the tenants deleted meanwhile
        for gone in set(self._next_scan) - set(strict):
            del self._next_scan[gone]
        works.sort(key=lambda w: w.oldest)
        return works[:limit]

    def _read_ready(
        self,
        tenant_id: str | None,
        database: Database | Callable[[], Database],
        now: datetime,
        limit: int,
        exclude: list[str],
    ) -> list[outbox.ChannelWork]:
        """One database's ready channels; none (logged once per outage) when it cannot be read."""
        try:
            opened = database if isinstance(database, Database) else database()
            with opened.engine.connect() as connection:
                found = outbox.ready_channels(connection, now, limit, exclude_tenants=exclude)
        except (SlackToolsError, SQLAlchemyError) as exc:
            if tenant_id not in self.unreachable:
                self.unreachable.add(tenant_id)
                log.warning(
                    "dispatcher.database_unreachable",
                    tenant=tenant_id or "",
                    database="shared" if tenant_id is None else "tenant",
                    error=type(exc).__name__,
                )
            return []
        if tenant_id in self.unreachable:
            self.unreachable.discard(tenant_id)
            log.info("dispatcher.database_back", tenant=tenant_id or "")
        return found

    # --- one channel ---------------------------------------------------------------------

    async def _channel(self, work: outbox.ChannelWork, *, counted: bool = True) -> None:
        config = self.runtime.config
        settings = config.delivery
        now = self.clock()
        lease = now + timedelta(seconds=settings.lease_seconds)
        claimed, groups, ready = await asyncio.to_thread(
            self._claim, work, now, lease, work.ready if counted else None
        )
        work = replace(work, ready=ready)
        if not claimed:
            return
        claimed = await self._keep_for_one_message(claimed, groups)
        try:
            await self._deliver(config, work, claimed, groups)
        except asyncio.CancelledError:
            await asyncio.to_thread(self.ledger.release, claimed, self.clock(), False, None)
            raise
        except Exception as exc:  # a bug must not leave rows leased and retried forever
            log.exception("dispatcher.delivery_crashed", tenant=work.tenant_id)
            reason = f"internal_error: {type(exc).__name__}"
            self.metrics.delivery_errors.labels(tenant=work.tenant_id, reason="internal").inc()
            if max(c.attempts for c in claimed) + 1 >= config.resilience.max_attempts:
                await self._bury(claimed, reason)
            else:
                later = self.clock() + timedelta(seconds=config.resilience.backoff_max_seconds)
                await asyncio.to_thread(self.ledger.release, claimed, later, True, reason)

    async def _keep_for_one_message(
        self, claimed: list[outbox.Claimed], stored: Mapping[str, outbox.StoredGroup]
    ) -> list[outbox.Claimed]:
        """The claimed rows one Slack call will serve; the others go back at once.

        Only groups that need a new message go into a digest: a group that already has
        its message (or lives in a digest) is edited or replied to, one at a time.
        """
        if len(claimed) == 1:
            return claimed
        fresh = [c for c in claimed if needs_new_message(c, stored.get(c.group_hash))]
        keep = fresh if len(fresh) > 1 else claimed[:1]
        back = [c for c in claimed if c not in keep]
        if back:
            await asyncio.to_thread(self.ledger.release, back, self.clock(), False, None)
        return keep

    def _claim(
        self, work: outbox.ChannelWork, now: datetime, lease: datetime, ready: int | None
    ) -> tuple[list[outbox.Claimed], dict[str, outbox.StoredGroup], int]:
        settings = self.runtime.config.delivery
        threshold = settings.digest_after_seconds * settings.channel_posts_per_second
        with self.runtime.database_for(work.tenant_id).transaction() as connection:
            if ready is None:
                ready = ready_count(connection, work.tenant_id, work.channel, now)
            # More than the pace sends within digest_after_seconds: one digest for them all.
            limit = DIGEST_MAX_GROUPS if ready > threshold else 1
            claimed = outbox.claim(
                connection,
                tenant_id=work.tenant_id,
                channel=work.channel,
                now=now,
                owner=self.owner,
                lease_until=lease,
                limit=limit,
            )
            groups = outbox.load_groups(connection, work.tenant_id, (c.group_hash for c in claimed))
        return claimed, groups, ready

    async def _deliver(
        self,
        config: AppConfig,
        work: outbox.ChannelWork,
        claimed: list[outbox.Claimed],
        stored: Mapping[str, outbox.StoredGroup],
    ) -> None:
        effective = self.runtime.peek_effective(work.tenant_id)
        if effective is None:
            effective = await asyncio.to_thread(self.runtime.effective, work.tenant_id)
        tenant = effective.tenant
        token = self._token(config, tenant)
        if token is None:
            await self._bury(claimed, "no_token: no Slack bot token for this tenant or globally")
            return
        workspace = workspace_of(token)
        breaker = self.breakers.get(workspace)
        self.metrics.breaker_state.labels(workspace=workspace).set(_BREAKER_LEVEL[breaker.state])
        if not breaker.allow():
            # The workspace is failing: wait without spending attempts (DESIGN "Slack budgets").
            retry = breaker.retry_at() or (time.monotonic() + 1.0)
            await self._later(claimed, max(retry - time.monotonic(), 0.5))
            return
        tracked = BreakerCall(breaker)
        try:
            await self._plan_and_send(config, work, claimed, stored, tenant, token, tracked)
        finally:
            tracked.settle()  # a call that recorded nothing must not keep a half-open probe

    async def _plan_and_send(
        self,
        config: AppConfig,
        work: outbox.ChannelWork,
        claimed: list[outbox.Claimed],
        stored: Mapping[str, outbox.StoredGroup],
        tenant: TenantConfig,
        token: str,
        breaker: BreakerCall,
    ) -> None:
        workspace = workspace_of(token)
        # Rendering is CPU work (a tenant template may spend its whole budget): off the loop,
        # with the tenant bound so a template fallback is logged and counted under it.
        with structlog.contextvars.bound_contextvars(tenant=work.tenant_id):
            plan = await asyncio.to_thread(self._plan, claimed, stored, tenant)
        if plan is None:
            await self._bury(claimed, "group_missing: the group's state is no longer stored")
            return
        budgets = Budgets.from_config(config)
        wait = await self.limiter.try_acquire_all(
            pacing_requests(plan, workspace, work.channel, budgets)
        )
        if wait > 0:
            breaker.record_ignored()
            self._not_before[(work.tenant_id, work.channel)] = time.monotonic() + wait
            await self._later(claimed, wait)
            return
        over = await full_message_quotas(self.quotas, work.tenant_id, tenant.quotas, plan)
        if over:
            breaker.record_ignored()
            await self._hold(plan.rows, over, work.tenant_id)
            return
        await self._send(plan, token, workspace, work, tenant, budgets, breaker)

    def _token(self, config: AppConfig, tenant: TenantConfig) -> str | None:
        if tenant.slack_bot_token is not None:
            return tenant.slack_bot_token.get_secret_value()
        if config.slack.bot_token is not None:
            return config.slack.bot_token.get_secret_value()
        return self.default_token()

    def _plan(
        self,
        claimed: list[outbox.Claimed],
        stored: Mapping[str, outbox.StoredGroup],
        tenant: TenantConfig,
    ) -> Plan | None:
        return plan_delivery(
            claimed,
            stored,
            lambda locale: self.catalogs.localizer(locale, tenant.timezone),
            self.clock(),
            thread_replies=self.runtime.config.delivery.thread_replies,
            engine=self.templates,
            templates=tenant.templates,
            # Without a signing secret no press of the button could be verified.
            acknowledge=self.runtime.config.slack.signing_secret is not None,
        )

    async def _send(
        self,
        plan: Plan,
        token: str,
        workspace: str,
        work: outbox.ChannelWork,
        tenant: TenantConfig,
        budgets: Budgets,
        breaker: BreakerCall,
    ) -> None:
        first = plan.rows[0]
        try:
            posted = await self._call(plan, token, first)
        except SlackCallError as error:
            if error.outcome is not Outcome.NOT_EDITABLE:
                await self._failed(plan, error, workspace, work, budgets, breaker)
                return
            # The old message cannot be edited: forget it, and post the current state as a
            # new message — now if the channel's pace allows, else at its next turn.
            breaker.record_ignored()
            await asyncio.to_thread(self.ledger.forget_messages, plan.rows)
            plan = Plan(Action.POST, plan.message, plan.rows, plan.episodes)
            wait = await self.limiter.try_acquire_all(
                pacing_requests(plan, workspace, work.channel, budgets)
            )
            if wait > 0:
                await self._later(plan.rows, wait)
                return
            try:
                posted = await self._call(plan, token, first)
            except SlackCallError as second:
                await self._failed(plan, second, workspace, work, budgets, breaker)
                return
        breaker.record_success()
        await count_message(self.quotas, work.tenant_id, tenant.quotas, plan)
        if plan.action is not Action.UPDATE:
            await self._posted(workspace, work, budgets, len(plan.rows))
        await self._record(plan, posted, work.tenant_id, tenant)
        if plan.reply is not None and posted.ts:
            await self._reply(plan.reply, token, workspace, posted, budgets, work)

    async def _call(self, plan: Plan, token: str, first: outbox.Claimed) -> Posted:
        if plan.action is Action.UPDATE:
            channel_id, ts = first.message_channel_id, first.message_ts
            if channel_id is None or ts is None:  # pragma: no cover - planned only with both
                raise SlackCallError(
                    "chat.update: no message to edit",
                    outcome=Outcome.NOT_EDITABLE,
                    reason="message_not_found",
                )
            return await self.client.update(token, channel_id, ts, plan.message)
        if plan.action is Action.REPLY:
            channel = first.message_channel_id or first.channel
            posted = await self.client.post(token, channel, plan.message, thread_ts=plan.thread_ts)
            # A reply does not replace the message the group lives in: keep the parent's ts.
            return Posted(posted.channel_id, plan.thread_ts or posted.ts)
        return await self.client.post(token, first.channel, plan.message)

    async def _reply(
        self,
        reply: SlackMessage,
        token: str,
        workspace: str,
        posted: Posted,
        budgets: Budgets,
        work: outbox.ChannelWork,
    ) -> None:
        """Best effort: a thread reply that cannot go now is skipped, never retried.

        The edited message already shows the new state; the reply only notifies.
        """
        channel_key = channel_posts_key(workspace, work.channel)
        wait = await self.limiter.try_acquire_all(
            [
                (channel_key, budgets.channel_posts, 1.0),
                (workspace_posts_key(workspace), budgets.workspace_posts, 1.0),
            ]
        )
        if wait > 0:
            return
        try:
            await self.client.post(token, posted.channel_id, reply, thread_ts=posted.ts)
        except SlackCallError as error:
            if error.outcome is Outcome.RATE_LIMITED:
                await self.limiter.penalise(
                    channel_key, budgets.channel_posts, error.retry_after or 1.0
                )
            return
        await self._posted(workspace, work, budgets, 1)
        self.metrics.messages_sent.labels(tenant=work.tenant_id, status=Action.REPLY.value).inc()

    async def _posted(
        self, workspace: str, work: outbox.ChannelWork, budgets: Budgets, served: int
    ) -> None:
        """Slack accepted a post serving ``served`` deliveries: start the channel's next second.

        Counted from Slack's answer, not from the request: network jitter must not make
        two posts reach Slack less than a second apart. Until that second is up the cycle
        skips the channel, rather than claiming and rendering work the pace refuses; the
        moment it is up, a channel known to have more work starts at once.
        """
        bucket = budgets.channel_posts
        await self.limiter.empty(channel_posts_key(workspace, work.channel), bucket)
        seconds = 1.0 / bucket.rate_per_second
        self._not_before[(work.tenant_id, work.channel)] = time.monotonic() + seconds
        loop = asyncio.get_running_loop()
        if work.ready > served:
            loop.call_later(seconds + 0.001, self._second_up, work)
        else:
            loop.call_later(seconds + 0.001, self.wake, work.tenant_id)

    async def _failed(
        self,
        plan: Plan,
        error: SlackCallError,
        workspace: str,
        work: outbox.ChannelWork,
        budgets: Budgets,
        breaker: BreakerCall,
    ) -> None:
        self.metrics.delivery_errors.labels(tenant=work.tenant_id, reason=error.reason).inc()
        rows = list(plan.rows)
        if self.stopping and error.outcome is Outcome.TRANSIENT:
            # Shutting down: the failure may be ours (a closing connection); no attempt spent.
            breaker.record_ignored()
            await self._later(rows, 0.0)
            return
        if error.outcome is Outcome.RATE_LIMITED:
            # Not a failure: Slack says when to come back, and everyone on that key waits.
            breaker.record_ignored()
            self.metrics.rate_limited.labels(tenant=work.tenant_id).inc()
            seconds = error.retry_after or 1.0
            if plan.action is Action.UPDATE:
                await self.limiter.penalise(
                    workspace_updates_key(workspace), budgets.workspace_updates, seconds
                )
            else:
                await self.limiter.penalise(
                    channel_posts_key(workspace, work.channel), budgets.channel_posts, seconds
                )
            await self._later(rows, seconds)
            return
        if error.outcome is Outcome.PERMANENT or error.outcome is Outcome.NOT_EDITABLE:
            breaker.record_ignored()
            log.warning("delivery.dead_letter", tenant=work.tenant_id, reason=error.reason)
            await self._bury(rows, error.reason)
            return
        breaker.record_failure()
        resilience = self.runtime.config.resilience
        policy = RetryPolicy(
            resilience.backoff_base_seconds, resilience.backoff_max_seconds, resilience.max_attempts
        )
        attempt = max(r.attempts for r in rows) + 1
        if not policy.should_retry(attempt):
            log.warning(
                "delivery.dead_letter", tenant=work.tenant_id, reason=error.reason, attempts=attempt
            )
            await self._bury(rows, f"{error.reason} after {attempt} attempts")
            return
        delay = policy.next_delay(attempt, error.retry_after)
        now = self.clock()
        await asyncio.to_thread(
            self.ledger.release, rows, now + timedelta(seconds=delay), True, error.reason
        )
        asyncio.get_running_loop().call_later(delay + 0.001, self.wake, work.tenant_id)

    # --- recording -----------------------------------------------------------------------

    async def _record(
        self, plan: Plan, posted: Posted, tenant_id: str, tenant: TenantConfig
    ) -> None:
        now = self.clock()
        if plan.action is Action.DIGEST:
            kind = "digest"
        elif plan.action is Action.REPLY:  # the group still lives in the digest it replied to
            kind = plan.rows[0].message_kind or "digest"
        else:
            kind = "group"
        sent = [
            outbox.Sent(row.id, row.version, kind, posted.channel_id, posted.ts, episode)
            for row, episode in zip(plan.rows, plan.episodes, strict=True)
        ]
        await self._write_sent_durably(sent, now, tenant_id)
        self.metrics.messages_sent.labels(tenant=tenant_id, status=plan.action.value).inc()
        for row in plan.rows:
            if row.pending_since is not None:
                self.metrics.delivery_latency.labels(tenant_class=tenant.plan).observe(
                    max((now - row.pending_since).total_seconds(), 0.0)
                )

    async def _write_sent_durably(
        self, sent: list[outbox.Sent], now: datetime, tenant_id: str
    ) -> None:
        """Record what Slack accepted, trying again while the database is away.

        Slack said ok: going back to the queue would post the message twice. So the
        record is retried here (it is idempotent); if the database stays away longer, the
        lease runs out and the message may be posted again — the documented window.
        """
        for pause in RECORD_RETRY_SECONDS:
            try:
                await asyncio.to_thread(self.ledger.sent, sent, now, tenant_id)
            except (SlackToolsError, SQLAlchemyError) as exc:
                log.warning("delivery.record_retry", tenant=tenant_id, error=type(exc).__name__)
                await asyncio.sleep(pause)
            else:
                return
        log.error("delivery.record_failed", tenant=tenant_id, deliveries=len(sent))

    async def _later(self, rows: Sequence[outbox.Claimed], seconds: float) -> None:
        when = self.clock() + timedelta(seconds=seconds)
        await asyncio.to_thread(self.ledger.release, rows, when, False, None)
        # Look again when they are due, not at the next poll.
        tenant_id = rows[0].tenant_id if rows else None
        asyncio.get_running_loop().call_later(max(seconds, 0.0) + 0.001, self.wake, tenant_id)

    async def _hold(
        self, rows: Sequence[outbox.Claimed], over: Sequence[QuotaUse], tenant_id: str
    ) -> None:
        """Keep a new message back until every quota it exceeds has a new window."""
        until = datetime.fromtimestamp(max(use.window_end for use in over), UTC)
        now = self.clock()

        newly = await asyncio.to_thread(self.ledger.hold, rows, until, now, tenant_id)
        for use in over:
            self.metrics.quota_exceeded.labels(tenant=tenant_id, quota=use.quota.name).inc()
        self.metrics.messages_held.labels(tenant=tenant_id).inc(newly)
        log.info(
            "delivery.held_by_quota",
            tenant=tenant_id,
            quotas=[use.quota.name for use in over],
            until=until.isoformat(),
            deliveries=len(rows),
        )
        delay = max((until - self.clock()).total_seconds(), 0.0)
        asyncio.get_running_loop().call_later(delay + 0.001, self.wake, tenant_id)

    async def _bury(self, rows: Sequence[outbox.Claimed], reason: str) -> None:
        await asyncio.to_thread(self.ledger.bury, rows, reason)

    def _breaker_moved(self, name: str, old: BreakerState, new: BreakerState) -> None:
        log.warning("slack.breaker", workspace=name, old=old.value, new=new.value)
        self.metrics.breaker_state.labels(workspace=name).set(_BREAKER_LEVEL[new])


_BREAKER_LEVEL = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def _round_robin(works: list[outbox.ChannelWork]) -> list[outbox.ChannelWork]:
    """Interleave tenants, so that one tenant's many channels do not go first."""
    by_tenant: dict[str, list[outbox.ChannelWork]] = defaultdict(list)
    for work in works:
        by_tenant[work.tenant_id].append(work)
    queues = list(by_tenant.values())
    ordered: list[outbox.ChannelWork] = []
    while queues:
        ordered += [queue.pop(0) for queue in queues]
        queues = [queue for queue in queues if queue]
    return ordered


__all__ = ["Action", "Budgets", "Dispatcher", "Plan", "SharedLimiter", "plan_delivery"]
