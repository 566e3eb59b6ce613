"""Grafana alerting's webhook contact point (version 1) → one ``AlertGroup``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, TypeAdapter

from slack_tools.alerts.models import Alert, AlertGroup, Links, Source, Status, label_fingerprint
from slack_tools.alerts.sources.common import Payload, decode, link, moment
from slack_tools.errors import PayloadError

SUPPORTED_VERSION = "1"


class WebhookAlert(Payload):
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = {}
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""
    silenceURL: str = ""
    dashboardURL: str = ""
    panelURL: str = ""
    values: dict[str, Any] | None = None
    valueString: str = ""


class Webhook(Payload):
    version: str
    groupKey: str = Field(min_length=1, max_length=8192)
    truncatedAlerts: int = Field(0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    orgId: int | None = None
    title: str = ""
    state: str = ""
    message: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""
    alerts: list[WebhookAlert] = Field(min_length=1)


_ADAPTER = TypeAdapter(Webhook)


def _value(item: WebhookAlert) -> str | None:
    if item.values:
        return ", ".join(f"{name}={value}" for name, value in sorted(item.values.items()))
    return item.valueString or None


def parse(body: bytes) -> list[AlertGroup]:
    """Parse a Grafana alerting notification."""
    webhook = decode(_ADAPTER, body, "Grafana webhook")
    if webhook.version != SUPPORTED_VERSION:
        raise PayloadError(
            "unsupported Grafana webhook version",
            errors=[{"field": "version", "message": f'expected "{SUPPORTED_VERSION}"'}],
        )
    alerts = tuple(
        Alert(
            fingerprint=item.fingerprint or label_fingerprint(item.labels),
            status=Status(item.status),
            labels=item.labels,
            annotations=item.annotations,
            starts_at=moment(item.startsAt),
            ends_at=moment(item.endsAt),
            links=Links(
                generator=link(item.generatorURL),
                runbook=link(item.annotations.get("runbook_url")),
                silence=link(item.silenceURL),
                dashboard=link(item.dashboardURL),
                panel=link(item.panelURL),
            ),
            value=_value(item),
        )
        for item in webhook.alerts
    )
    return [
        AlertGroup(
            source=Source.GRAFANA,
            group_key=webhook.groupKey,
            status=Status(webhook.status),
            alerts=alerts,
            group_labels=webhook.groupLabels,
            common_labels=webhook.commonLabels,
            common_annotations=webhook.commonAnnotations,
            external_url=link(webhook.externalURL),
            receiver=webhook.receiver,
            title=webhook.title or None,
            truncated_alerts=webhook.truncatedAlerts,
            silence_url=next((a.links.silence for a in alerts if a.links.silence), None),
        )
    ]
