"""Grafana alerting's webhook contact point (version 1) → one ``AlertGroup``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, TypeAdapter

from slack_tools.alerts.models import Alert, AlertGroup, Links, Source, Status, label_fingerprint
from slack_tools.alerts.sources import fast
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
    try:
        return parse_fast(body)
    except fast.Unsure:
        return parse_validated(body)


# orjson reads an integer past 64 bits as a float where pydantic keeps the integer, so
# a float that large may have been written as one: left to the validating parser.
_EXACT_FLOAT_BELOW = 2.0**63


def _fast_value(item: Mapping[str, Any]) -> str | None:
    values = item.get("values")
    if values is not None and type(values) is not dict:
        raise fast.Unsure
    for value in (values or {}).values():
        kind = type(value)
        if kind is float:
            if not abs(value) < _EXACT_FLOAT_BELOW:
                raise fast.Unsure
        elif kind not in (str, int, bool) and value is not None:
            raise fast.Unsure  # nested values: rare, and read as the models read them
    value_string = fast.text(item, "valueString")
    if values:
        return ", ".join(f"{name}={value}" for name, value in sorted(values.items()))
    return value_string or None


def parse_fast(body: bytes) -> list[AlertGroup]:
    """A well-formed notification read from decoded JSON; ``fast.Unsure`` for anything else."""
    doc = fast.obj(fast.document(body))
    if doc.get("version") != SUPPORTED_VERSION:
        raise fast.Unsure
    group_key = fast.required_text(doc, "groupKey", 8192)
    truncated = fast.count(doc, "truncatedAlerts")
    status = fast.status(doc)
    receiver = fast.text(doc, "receiver")
    org_id = doc.get("orgId")
    if org_id is not None and type(org_id) is not int:
        raise fast.Unsure
    title = fast.text(doc, "title")
    fast.text(doc, "state")
    fast.text(doc, "message")
    group_labels = fast.strings(doc, "groupLabels")
    labels_in_common = fast.strings(doc, "commonLabels")
    annotations_in_common = fast.strings(doc, "commonAnnotations")
    external_url = fast.text(doc, "externalURL")
    alerts = fast.webhook_alerts(
        doc,
        lambda item, annotations: Links(
            generator=link(fast.text(item, "generatorURL")),
            runbook=link(annotations.get("runbook_url")),
            silence=link(fast.text(item, "silenceURL")),
            dashboard=link(fast.text(item, "dashboardURL")),
            panel=link(fast.text(item, "panelURL")),
        ),
        _fast_value,
    )
    return [
        AlertGroup(
            source=Source.GRAFANA,
            group_key=group_key,
            status=status,
            alerts=tuple(alerts),
            group_labels=group_labels,
            common_labels=labels_in_common,
            common_annotations=annotations_in_common,
            external_url=link(external_url),
            receiver=receiver,
            title=title or None,
            truncated_alerts=truncated,
            silence_url=next((a.links.silence for a in alerts if a.links.silence), None),
        )
    ]


def parse_validated(body: bytes) -> list[AlertGroup]:
    """Any body, through the payload models: what is refused is refused here, field by field."""
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
