"""Prometheus Alertmanager's webhook (version 4) → one ``AlertGroup``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, TypeAdapter

from slack_tools.alerts.models import Alert, AlertGroup, Links, Source, Status, label_fingerprint
from slack_tools.alerts.sources import fast
from slack_tools.alerts.sources.common import (
    Payload,
    alertmanager_silence_url,
    decode,
    link,
    moment,
)
from slack_tools.errors import PayloadError

SUPPORTED_VERSION = "4"


class WebhookAlert(Payload):
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = {}
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class Webhook(Payload):
    version: str
    groupKey: str = Field(min_length=1, max_length=8192)
    truncatedAlerts: int = Field(0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""
    alerts: list[WebhookAlert] = Field(min_length=1)


_ADAPTER = TypeAdapter(Webhook)


def parse(body: bytes) -> list[AlertGroup]:
    """Parse an Alertmanager notification."""
    try:
        return parse_fast(body)
    except fast.Unsure:
        return parse_validated(body)


def parse_fast(body: bytes) -> list[AlertGroup]:
    """A well-formed notification read from decoded JSON; ``fast.Unsure`` for anything else."""
    doc = fast.obj(fast.document(body))
    if doc.get("version") != SUPPORTED_VERSION:
        raise fast.Unsure
    group_key = fast.required_text(doc, "groupKey", 8192)
    truncated = fast.count(doc, "truncatedAlerts")
    status = fast.status(doc)
    receiver = fast.text(doc, "receiver")
    group_labels = fast.strings(doc, "groupLabels")
    labels_in_common = fast.strings(doc, "commonLabels")
    annotations_in_common = fast.strings(doc, "commonAnnotations")
    external_url = fast.text(doc, "externalURL")
    alerts = fast.webhook_alerts(
        doc,
        lambda item, annotations: fast.links(
            link(fast.text(item, "generatorURL")), link(annotations.get("runbook_url"))
        ),
    )
    return [
        AlertGroup(
            source=Source.ALERTMANAGER,
            group_key=group_key,
            status=status,
            alerts=tuple(alerts),
            group_labels=group_labels,
            common_labels=labels_in_common,
            common_annotations=annotations_in_common,
            external_url=link(external_url),
            receiver=receiver,
            truncated_alerts=truncated,
            silence_url=alertmanager_silence_url(external_url, labels_in_common or group_labels),
        )
    ]


def parse_validated(body: bytes) -> list[AlertGroup]:
    """Any body, through the payload models: what is refused is refused here, field by field."""
    webhook = decode(_ADAPTER, body, "Alertmanager webhook")
    if webhook.version != SUPPORTED_VERSION:
        raise PayloadError(
            "unsupported Alertmanager webhook version",
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
            ),
        )
        for item in webhook.alerts
    )
    return [
        AlertGroup(
            source=Source.ALERTMANAGER,
            group_key=webhook.groupKey,
            status=Status(webhook.status),
            alerts=alerts,
            group_labels=webhook.groupLabels,
            common_labels=webhook.commonLabels,
            common_annotations=webhook.commonAnnotations,
            external_url=link(webhook.externalURL),
            receiver=webhook.receiver,
            truncated_alerts=webhook.truncatedAlerts,
            silence_url=alertmanager_silence_url(
                webhook.externalURL, webhook.commonLabels or webhook.groupLabels
            ),
        )
    ]
