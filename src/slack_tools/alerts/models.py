"""The alerting domain: alerts, groups of alerts, and where they are to be delivered.

Every source (Alertmanager, Grafana, generic JSON) is normalised into these
types; nothing downstream knows which source an alert came from except through
``Alert.source`` and the links it carries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, Self, TypeVar, overload

from slack_tools.configs.schema import Severity

T = TypeVar("T")


class cached_property(Generic[T]):  # noqa: N801 - a drop-in for functools.cached_property
    """``functools.cached_property`` without its lock.

    On Python 3.11 each first computation takes a lock shared by every instance and
    thread (3.12 removed it); the ingest writer thread and the event loop then wait
    on each other for hashes and severities. These values are pure, so two threads
    computing one at once store equal values.
    """

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Self: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> Self | T:
        if instance is None:
            return self
        value = self.func(instance)
        instance.__dict__[self.name] = value
        return value


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Source(StrEnum):
    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    GENERIC = "generic"


UNKNOWN_SEVERITY_FALLBACK = Severity.WARNING
_SEVERITY_ALIASES = {
    "crit": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "fatal": Severity.CRITICAL,
    "high": Severity.ERROR,
    "err": Severity.ERROR,
    "major": Severity.ERROR,
    "warn": Severity.WARNING,
    "medium": Severity.WARNING,
    "minor": Severity.WARNING,
    "low": Severity.INFO,
    "informational": Severity.INFO,
    "notice": Severity.INFO,
    "ok": Severity.NONE,
}


def parse_severity(value: str | None) -> tuple[Severity, bool]:
    """The severity named by a label, and whether it was understood.

    Unknown or missing values count as ``warning`` (DESIGN "Tenant configuration
    keys"); the caller counts them so a misspelt label is noticed.
    """
    if value is None:
        return _NOT_UNDERSTOOD
    # Called for every alert received: one dict lookup for the usual exact word.
    found = _SEVERITY_WORDS.get(value)
    if found is None:
        found = _SEVERITY_WORDS.get(value.strip().lower(), _NOT_UNDERSTOOD)
    return found


_NOT_UNDERSTOOD = (UNKNOWN_SEVERITY_FALLBACK, False)
_SEVERITY_WORDS: dict[str, tuple[Severity, bool]] = {
    word: (severity, True)
    for word, severity in [*((s.value, s) for s in Severity), *_SEVERITY_ALIASES.items()]
}
_SEVERITY_RANK = {severity: severity.rank for severity in Severity}


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """A stable fingerprint of a label set (the sender's is used when it gives one)."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Links:
    """Where a reader can go from an alert."""

    generator: str | None = None
    runbook: str | None = None
    silence: str | None = None
    dashboard: str | None = None
    panel: str | None = None


@dataclass(frozen=True)
class Alert:
    """One alert, normalised."""

    fingerprint: str
    status: Status
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime | None
    ends_at: datetime | None
    links: Links = Links()
    value: str | None = None

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "alert")

    @cached_property
    def severity(self) -> Severity:
        return parse_severity(self.labels.get("severity"))[0]

    @property
    def is_resolved(self) -> bool:
        return self.status is Status.RESOLVED


@dataclass(frozen=True)
class AlertGroup:
    """A notification: a group of alerts as the sender sees it now.

    ``replaces`` tells whether the alert list is the whole group (Alertmanager,
    Grafana) or only the alerts that changed (generic senders), to be merged into
    what is already known of the group.
    """

    source: Source
    group_key: str
    status: Status
    alerts: tuple[Alert, ...]
    group_labels: Mapping[str, str] = field(default_factory=dict)
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    external_url: str | None = None
    receiver: str | None = None
    title: str | None = None
    truncated_alerts: int = 0
    silence_url: str | None = None
    replaces: bool = True

    @cached_property
    def group_hash(self) -> str:
        """A short, fixed-size id for the group key (keys can be hundreds of characters)."""
        return hashlib.sha256(self.group_key.encode("utf-8")).hexdigest()[:32]

    @cached_property
    def state_hash(self) -> str:
        """What the group looks like: its status and each alert's fingerprint and status.

        Two copies of one notification (Alertmanager in HA) have the same state;
        annotations are left out on purpose, as Alertmanager's own dedup does.
        """
        status_text = _STATUS_TEXT  # an enum's .value is a Python-level property lookup
        parts = sorted([f"{a.fingerprint}:{status_text[a.status]}" for a in self.alerts])
        canonical = f"{status_text[self.status]}|{'|'.join(parts)}|{self.truncated_alerts}"
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]

    @cached_property
    def severity(self) -> Severity:
        """The highest severity among the group's firing alerts (or all, if none fires)."""
        firing = [a for a in self.alerts if not a.is_resolved] or list(self.alerts)
        return max(
            (a.severity for a in firing), key=_SEVERITY_RANK.__getitem__, default=Severity.NONE
        )

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if not a.is_resolved)

    @property
    def resolved(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.is_resolved)

    @property
    def name(self) -> str:
        return (
            self.common_labels.get("alertname")
            or self.group_labels.get("alertname")
            or (self.alerts[0].name if self.alerts else "alerts")
        )


_STATUS_TEXT = {status: status.value for status in Status}


def _links_to_dict(links: Links) -> dict[str, str]:
    found: dict[str, str] = {}
    if links.generator:
        found["generator"] = links.generator
    if links.runbook:
        found["runbook"] = links.runbook
    if links.silence:
        found["silence"] = links.silence
    if links.dashboard:
        found["dashboard"] = links.dashboard
    if links.panel:
        found["panel"] = links.panel
    return found


_ISO_TIMES_MAX = 4096
_iso_times: dict[datetime, str] = {}


def _iso(moment: datetime) -> str:
    """``moment.isoformat()``, remembered: the alerts of a group share a few start times,
    and isoformat costs more than the rest of an alert's stored form. Only UTC times are
    remembered: equal times in other zones are written with their own offsets."""
    if moment.tzinfo is not UTC:
        return moment.isoformat()
    try:
        return _iso_times[moment]
    except KeyError:
        pass
    if len(_iso_times) >= _ISO_TIMES_MAX:
        _iso_times.clear()
    text = _iso_times[moment] = moment.isoformat()
    return text


def alert_to_dict(alert: Alert) -> dict[str, object]:
    """A JSON-ready form of an alert, for storage."""
    # Written for every alert of every accepted notification, on the writer thread.
    starts_at, ends_at = alert.starts_at, alert.ends_at
    return {
        "fingerprint": alert.fingerprint,
        "status": _STATUS_TEXT[alert.status],
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": _iso(starts_at) if starts_at else None,
        "ends_at": _iso(ends_at) if ends_at else None,
        "links": _links_to_dict(alert.links),
        "value": alert.value,
    }


def alert_from_dict(data: Mapping[str, Any]) -> Alert:
    """The inverse of :func:`alert_to_dict`."""
    return Alert(
        fingerprint=str(data["fingerprint"]),
        status=Status(data["status"]),
        labels=dict(data.get("labels") or {}),
        annotations=dict(data.get("annotations") or {}),
        starts_at=datetime.fromisoformat(data["starts_at"]) if data.get("starts_at") else None,
        ends_at=datetime.fromisoformat(data["ends_at"]) if data.get("ends_at") else None,
        links=Links(**dict(data.get("links") or {})),
        value=data.get("value"),
    )


def group_meta(group: AlertGroup) -> dict[str, object]:
    """What a stored group keeps besides its alerts."""
    return {
        "group_labels": dict(group.group_labels),
        "common_labels": dict(group.common_labels),
        "common_annotations": dict(group.common_annotations),
        "external_url": group.external_url,
        "receiver": group.receiver,
        "title": group.title,
        "truncated_alerts": group.truncated_alerts,
        "silence_url": group.silence_url,
    }


def group_from_stored(
    source: str,
    group_key: str,
    status: str,
    alerts: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
) -> AlertGroup:
    """Rebuild a group from its stored form."""
    return AlertGroup(
        source=Source(source),
        group_key=group_key,
        status=Status(status),
        alerts=tuple(alert_from_dict(a) for a in alerts),
        group_labels=dict(meta.get("group_labels") or {}),
        common_labels=dict(meta.get("common_labels") or {}),
        common_annotations=dict(meta.get("common_annotations") or {}),
        external_url=meta.get("external_url"),
        receiver=meta.get("receiver"),
        title=meta.get("title"),
        truncated_alerts=int(meta.get("truncated_alerts") or 0),
        silence_url=meta.get("silence_url"),
    )


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A message ready for chat.postMessage / chat.update: fallback text and Block Kit."""

    text: str
    blocks: tuple[Mapping[str, object], ...] = ()
    attachments: tuple[Mapping[str, object], ...] = ()

    def payload(self) -> dict[str, object]:
        """The fields to send (channel, ts and thread are added by the sender)."""
        body: dict[str, object] = {"text": self.text}
        if self.blocks:
            body["blocks"] = list(self.blocks)
        if self.attachments:
            body["attachments"] = list(self.attachments)
        return body


def merge_alerts(
    stored: tuple[Alert, ...], update: tuple[Alert, ...], *, refired: bool
) -> tuple[Alert, ...]:
    """A partial update (generic senders) merged into a group's alerts, by fingerprint.

    When the group had resolved and fires again, its old resolved alerts are
    dropped: the new episode starts from what fires now.
    """
    merged: dict[str, Alert] = {a.fingerprint: a for a in stored if not (refired and a.is_resolved)}
    for alert in update:
        merged[alert.fingerprint] = alert
    return tuple(merged.values())


def common_labels(alerts: tuple[Alert, ...]) -> dict[str, str]:
    """The labels every alert of a group shares."""
    if not alerts:
        return {}
    first = dict(alerts[0].labels)
    return {k: v for k, v in first.items() if all(a.labels.get(k) == v for a in alerts[1:])}
