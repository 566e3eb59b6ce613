"""``slack-tools deadletters …``, ``routes test`` and ``demo``: delivery from the command line."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from slack_tools.alerts import sources
from slack_tools.alerts.models import Source
from slack_tools.alerts.render import plain_view, render_group
from slack_tools.alerts.routing import route_group
from slack_tools.cli.common import err, open_runtime, out
from slack_tools.configs import ConfigManager, DocumentKey
from slack_tools.configs.localization import Catalogs
from slack_tools.configs.security import new_api_key
from slack_tools.configs.security.audit import AuditLog, list_dead_letters, replay_dead_letters
from slack_tools.errors import PayloadError, SlackToolsError
from slack_tools.storage.scope import ALL_TENANTS
from slack_tools.storage.tenants import TenantStore

deadletters_app = typer.Typer(help="Deliveries given up on: list and replay.", no_args_is_help=True)
routes_app = typer.Typer(help="Check routing without sending anything.", no_args_is_help=True)


@deadletters_app.command("list")
def deadletters_list(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
) -> None:
    """Dead letters, newest first, with the reason Slack gave.

    A strictly isolated tenant's are read in its own database (marked "own database"):
    their ids are that database's, so replay them with --tenant.
    """
    if tenant == "":
        raise typer.BadParameter("--tenant: give a tenant id (leave it out for every tenant)")
    runtime = open_runtime()
    log = AuditLog.of(runtime)
    unreachable: list[str] = []
    letters = list_dead_letters(
        log, ALL_TENANTS if tenant is None else tenant, unreachable=unreachable
    )
    strict = set(runtime.databases.strict_ids())
    table = Table()
    for column in ("id", "tenant", "channel", "reason", "attempts", "when (UTC)", "group"):
        table.add_column(column)
    for d in letters:
        table.add_row(
            str(d.id),
            d.tenant_id + (" (own database)" if d.tenant_id in strict else ""),
            d.channel,
            d.reason,
            str(d.attempts),
            d.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            d.group_key[:60],
        )
    out.print(table)
    if not letters:
        out.print("no dead letters")
    for missing in unreachable:
        err.print(
            f"tenant {missing}'s own database cannot be read: its dead letters are not listed"
        )


@deadletters_app.command("replay")
def deadletters_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="All of a tenant's.")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
) -> None:
    """Queue dead letters again; a running service picks them up at its next poll."""
    if not ids and tenant is None and not replay_all:
        raise typer.BadParameter("give dead letter ids, --tenant T, or --all")
    if tenant == "":
        raise typer.BadParameter("--tenant: give a tenant id")
    runtime = open_runtime()
    # A tenant's dead letters are replayed in its database (its own under strict isolation).
    count = replay_dead_letters(
        AuditLog.of(runtime), ALL_TENANTS if tenant is None else tenant, ids=ids or None
    )
    out.print(f"{count} dead letter(s) queued again")


def detect_source(body: bytes) -> Source:
    """Alertmanager (version 4 with groupKey), Grafana (with orgId), else generic."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return Source.GENERIC
    if isinstance(data, dict) and "groupKey" in data:
        return (
            Source.GRAFANA if "orgId" in data or data.get("version") == "1" else Source.ALERTMANAGER
        )
    return Source.GENERIC


@routes_app.command("test")
def routes_test(
    alert_file: Annotated[Path, typer.Argument(help="A payload as a sender would POST it.")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Whose routes to use.")],
    source: Annotated[
        Source | None, typer.Option(help="Default: detected from the payload.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the Block Kit JSON.")] = False,
) -> None:
    """Which channel(s), which locale, and the message, without sending (like amtool)."""
    try:
        body = alert_file.read_bytes()
    except OSError as exc:
        raise SlackToolsError(f"{alert_file}: cannot read: {exc.strerror}") from None
    chosen = source or detect_source(body)
    try:
        groups = sources.parse(chosen, body)
    except PayloadError as exc:
        details = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
        raise SlackToolsError(
            f"{alert_file}: {exc}" + (f" ({details})" if details else "")
        ) from None
    runtime = open_runtime()
    TenantStore(runtime.database.engine).require(tenant)
    tenant_config = ConfigManager(runtime).get_tenant_config(tenant)
    config = runtime.config
    catalogs = Catalogs(
        default_locale=config.localization.default_locale,
        fallback_locale=config.localization.fallback_locale,
    )
    now = datetime.now(UTC)
    for group in groups:
        out.print(
            f"group {group.name} ({chosen.value}, {group.status.value}, "
            f"severity {group.severity.value})",
            markup=False,
        )
        for target in route_group(group, tenant_config):
            where = "default channel" if target.route is None else f"route {target.route + 1}"
            if group.status.value == "resolved":
                verdict = "sent if this group's message is already in the channel"
            elif target.passes_threshold:
                verdict = "sent"
            else:
                verdict = f"not sent: below {target.threshold.value} (updates a posted message)"
            out.print(
                f"→ {target.channel} [{where}] locale {target.locale}: {verdict}", markup=False
            )
            message = render_group(
                group, catalogs.localizer(target.locale, tenant_config.timezone), now
            )
            if as_json:
                out.print(json.dumps(message.payload(), ensure_ascii=False, indent=2), markup=False)
            else:
                out.print(plain_view(message), markup=False, highlight=False)


# --- demo ---------------------------------------------------------------------------------

DEMO_TENANTS: dict[str, dict[str, Any]] = {
    "demo-paris": {"slack_channel": "#alertes", "locale": "fr_FR", "timezone": "Europe/Paris"},
    "demo-berlin": {"slack_channel": "#warnungen", "locale": "de_DE", "timezone": "Europe/Berlin"},
    "demo-nyc": {
        "slack_channel": "#alerts",
        "locale": "en_US",
        "timezone": "America/New_York",
        "routes": [{"matchers": ['severity="critical"'], "channel": "#oncall", "continue": True}],
    },
}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _alertmanager(status: str, started: datetime) -> dict[str, Any]:
    labels = {"alertname": "HighErrorRate", "severity": "critical", "service": "checkout"}
    ends = _iso(datetime.now(UTC)) if status == "resolved" else "0001-01-01T00:00:00Z"
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "slack-tools",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": labels,
        "commonAnnotations": {
            "summary": "Error rate above 5% on checkout",
            "runbook_url": "https://runbooks.example.org/high-error-rate",
        },
        "externalURL": "http://alertmanager.example.org:9093",
        "alerts": [
            {
                "status": status,
                "labels": {**labels, "instance": f"10.0.4.{n}:8080"},
                "annotations": {"description": f"5xx ratio is {6 + n}.{n}% over 5 minutes."},
                "startsAt": _iso(started),
                "endsAt": ends,
                "generatorURL": "http://prometheus.example.org:9090/graph",
                "fingerprint": f"demo{n:012d}",
            }
            for n in (1, 2)
        ],
    }


def _grafana(started: datetime) -> dict[str, Any]:
    labels = {"alertname": "DiskAlmostFull", "severity": "warning", "grafana_folder": "Storage"}
    return {
        "receiver": "slack-tools",
        "status": "firing",
        "orgId": 1,
        "version": "1",
        "groupKey": '{}:{alertname="DiskAlmostFull"}',
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": "DiskAlmostFull"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "Disk /data at 91% on db-2"},
        "externalURL": "https://grafana.example.org/",
        "title": "[FIRING:1] DiskAlmostFull",
        "state": "alerting",
        "message": "",
        "alerts": [
            {
                "status": "firing",
                "labels": {**labels, "instance": "db-2"},
                "annotations": {
                    "summary": "Disk /data at 91% on db-2",
                    "description": "Less than 9% free space left.",
                },
                "startsAt": _iso(started),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "https://grafana.example.org/alerting/view",
                "fingerprint": "demo-disk",
                "dashboardURL": "https://grafana.example.org/d/storage01",
                "panelURL": "https://grafana.example.org/d/storage01?viewPanel=4",
                "silenceURL": "https://grafana.example.org/alerting/silence/new",
                "values": {"B": 91.2},
            }
        ],
    }


def _generic(started: datetime) -> list[dict[str, Any]]:
    return [
        {
            "labels": {
                "alertname": "PaymentsQueueBacklog",
                "severity": "critical",
                "queue": "payments",
            },
            "annotations": {
                "summary": "12,400 payments waiting",
                "description": "Consumers stopped.",
            },
            "startsAt": _iso(started),
        },
        {
            "labels": {
                "alertname": "CertificateExpiresSoon",
                "severity": "info",
                "host": "api.example.org",
            },
            "annotations": {"summary": "TLS certificate expires in 14 days"},
        },
    ]


def demo(
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8080",
    resolve_after: Annotated[float, typer.Option(help="Seconds before the resolve is sent.")] = 3.0,
) -> None:
    """Send realistic alerts to a running service: several tenants and languages, a resolve."""
    try:
        httpx.get(f"{url}/health/live", timeout=5).raise_for_status()
    except httpx.HTTPError:
        raise SlackToolsError(
            f"no service answers at {url}: start it with python3 dev.py serve"
        ) from None
    runtime = open_runtime()
    store = TenantStore(runtime.database.engine)
    manager = ConfigManager(runtime)
    keys: dict[str, str] = {}
    for tenant_id, settings in DEMO_TENANTS.items():
        if store.get(tenant_id) is None:
            store.create(tenant_id, tenant_id.replace("-", " ").title())
        manager.apply(DocumentKey.for_scope(tenant_id), settings, comment="demo")
        key = new_api_key()
        store.add_key(tenant_id, digest=key.digest, prefix=key.prefix, label="demo")
        keys[tenant_id] = key.key
    started = datetime.now(UTC) - timedelta(minutes=17)
    sends: list[tuple[str, str, Any]] = [
        ("demo-paris", "/api/v1/alerts/alertmanager", _alertmanager("firing", started)),
        ("demo-berlin", "/api/v1/alerts/grafana", _grafana(started - timedelta(hours=2))),
        ("demo-nyc", "/api/v1/alerts", _generic(started)),
    ]
    with httpx.Client(base_url=url, timeout=10) as client:
        for tenant_id, path, payload in sends:
            response = client.post(
                path, json=payload, headers={"Authorization": f"Bearer {keys[tenant_id]}"}
            )
            out.print(f"{tenant_id}: POST {path} → {response.status_code}", markup=False)
            if response.status_code != 202:  # noqa: PLR2004
                err.print(response.text, markup=False)
        time.sleep(max(resolve_after, 0))
        response = client.post(
            "/api/v1/alerts/alertmanager",
            json=_alertmanager("resolved", started),
            headers={"Authorization": f"Bearer {keys['demo-paris']}"},
        )
        out.print(f"demo-paris: resolve → {response.status_code}", markup=False)
    if runtime.config.slack.mock:
        out.print(f"Open {url}/dev/slack/ to see the messages as readers do.", markup=False)
    else:
        out.print("The messages went to the real Slack channels named above.", markup=False)
