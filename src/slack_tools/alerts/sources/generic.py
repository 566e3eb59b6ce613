"""Any JSON sender: a list of alerts (or ``{"alerts": [...]}``) → one group per group key.

Generic senders give no group: alerts are grouped by ``alertname`` unless they
carry a ``group_key``, and each notification holds only the alerts that changed,
so the group is merged with what is already known of it (``replaces=False``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, Field, TypeAdapter, field_validator

from slack_tools.alerts.models import (
    Alert,
    AlertGroup,
    Links,
    Source,
    Status,
    common_labels,
    label_fingerprint,
)
from slack_tools.alerts.sources import fast
from slack_tools.alerts.sources.common import Payload, decode, link, moment
from slack_tools.errors import PayloadError

MAX_ALERTS = 1000


class GenericAlert(Payload):
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = {}
    status: Literal["firing", "resolved"] = "firing"
    startsAt: datetime | None = Field(None, validation_alias=AliasChoices("startsAt", "starts_at"))
    endsAt: datetime | None = Field(None, validation_alias=AliasChoices("endsAt", "ends_at"))
    fingerprint: str = Field("", max_length=128)
    generatorURL: str = Field("", validation_alias=AliasChoices("generatorURL", "generator_url"))
    group_key: str = Field("", max_length=1024)

    @field_validator("labels")
    @classmethod
    def _needs_alertname(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels.get("alertname"):
            raise ValueError("labels must include a non-empty alertname")
        return labels


class GenericBody(Payload):
    alerts: list[GenericAlert] = Field(min_length=1, max_length=MAX_ALERTS)


_LIST = TypeAdapter(list[GenericAlert])
_BODY = TypeAdapter(GenericBody)


def parse(body: bytes) -> list[AlertGroup]:
    """Parse a generic notification into one group per group key, in order of appearance."""
    try:
        return parse_fast(body)
    except fast.Unsure:
        return parse_validated(body)


def parse_fast(body: bytes) -> list[AlertGroup]:
    """A well-formed notification read from decoded JSON; ``fast.Unsure`` for anything else."""
    doc = fast.document(body)
    items = fast.items(doc, MAX_ALERTS) if type(doc) is list else fast.alerts(fast.obj(doc))
    if len(items) > MAX_ALERTS:
        raise fast.Unsure
    groups: dict[str, dict[str, Alert]] = {}
    for item in items:
        labels = fast.strings(item, "labels", required=True)
        name = labels.get("alertname")
        if not name:
            raise fast.Unsure
        annotations = fast.strings(item, "annotations")
        status = fast.status(item, default="firing")
        starts_at = fast.when(item, "startsAt", "starts_at")
        ends_at = fast.when(item, "endsAt", "ends_at")
        fingerprint = fast.text(item, "fingerprint", max_length=128)
        generator = fast.first_text(item, "generatorURL", "generator_url")
        key = fast.text(item, "group_key", max_length=1024) or f"generic/{name}"
        alert = Alert(
            fingerprint=fingerprint or label_fingerprint(labels),
            status=status,
            labels=labels,
            annotations=annotations,
            starts_at=starts_at,
            ends_at=ends_at,
            links=fast.links(link(generator), link(annotations.get("runbook_url"))),
        )
        groups.setdefault(key, {})[alert.fingerprint] = alert
    return _groups(groups)


def parse_validated(body: bytes) -> list[AlertGroup]:
    """Any body, through the payload models: what is refused is refused here, field by field."""
    # Pick the shape by its first character, so errors speak of one shape, not a union.
    if body.lstrip()[:1] == b"[":
        items = decode(_LIST, body, "generic alerts")
    else:
        items = decode(_BODY, body, "generic alerts").alerts
    if not items:
        raise PayloadError(
            "no alerts", errors=[{"field": "<body>", "message": "expected at least one alert"}]
        )
    if len(items) > MAX_ALERTS:
        raise PayloadError(
            "too many alerts",
            errors=[{"field": "<body>", "message": f"at most {MAX_ALERTS} alerts per request"}],
        )
    # Per group, one alert per fingerprint: a later entry of the same alert wins.
    groups: dict[str, dict[str, Alert]] = {}
    for item in items:
        key = item.group_key or f"generic/{item.labels['alertname']}"
        alert = Alert(
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
        groups.setdefault(key, {})[alert.fingerprint] = alert
    return _groups(groups)


def _groups(groups: dict[str, dict[str, Alert]]) -> list[AlertGroup]:
    return [
        AlertGroup(
            source=Source.GENERIC,
            group_key=key,
            status=Status.FIRING if any(not a.is_resolved for a in alerts) else Status.RESOLVED,
            alerts=tuple(alerts),
            group_labels={"alertname": alerts[0].name},
            common_labels=common_labels(tuple(alerts)),
            replaces=False,
        )
        for key, by_fingerprint in groups.items()
        for alerts in [list(by_fingerprint.values())]
    ]
