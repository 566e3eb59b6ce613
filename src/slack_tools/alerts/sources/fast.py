"""The ingest fast path: well-formed payloads read from plain decoded JSON.

Validating a webhook through the pydantic models and then copying the models
into ``Alert`` objects cost about three quarters of a parse (bench/ingest.py).
Most bodies are well formed, so each parser first reads the document that
orjson decodes, with plain type checks, straight into ``Alert`` and
``AlertGroup``. It accepts only what the models accept and reads it as they do;
at the first thing it is not sure of (a wrong type, a missing field, a number
where a time is expected, a bad version…) it gives up with ``Unsure`` and the
validating parser decides, so every refusal and its problem body come from one
place. Tests check that both paths agree on any input the fast one accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from slack_tools.alerts.models import Alert, Links, Status, label_fingerprint
from slack_tools.alerts.sources.common import moment
from slack_tools.errors import PayloadError

STATUSES = {"firing": Status.FIRING, "resolved": Status.RESOLVED}
_TIME = TypeAdapter(datetime)
_TIMES_MAX = 4096
_LINKS_MAX = 4096


class Unsure(Exception):  # noqa: N818 - not an error: the validating parser takes over
    """The fast path cannot vouch for this document."""


def document(body: bytes) -> Any:
    """The decoded body, or ``Unsure`` when it is not JSON orjson reads the way pydantic does."""
    if b"\\u0000" in body:
        raise Unsure
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Unsure from None


def obj(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise Unsure
    return value


def text(doc: Mapping[str, Any], key: str, default: str = "", max_length: int = -1) -> str:
    """A string member (``default`` when absent); ``max_length`` in characters, as pydantic."""
    value = doc.get(key, default)
    if type(value) is not str or (max_length >= 0 and len(value) > max_length):
        raise Unsure
    return value


def required_text(doc: Mapping[str, Any], key: str, max_length: int) -> str:
    value = doc.get(key)
    if type(value) is not str or not 0 < len(value) <= max_length:
        raise Unsure
    return value


def strings(doc: Mapping[str, Any], key: str, *, required: bool = False) -> dict[str, str]:
    """A ``dict[str, str]`` member; ``required`` means present and not empty."""
    value = doc.get(key)
    if value is None and not required and key not in doc:
        return {}
    if type(value) is not dict or (required and not value):
        raise Unsure
    for item in value.values():
        if type(item) is not str:
            raise Unsure
    return value


def status(doc: Mapping[str, Any], key: str = "status", default: str | None = None) -> Status:
    value = doc.get(key, default)
    found = STATUSES.get(value) if type(value) is str else None
    if found is None:
        raise Unsure
    return found


def count(doc: Mapping[str, Any], key: str) -> int:
    """A non-negative integer member, 0 when absent."""
    value = doc.get(key, 0)
    if type(value) is not int or value < 0:
        raise Unsure
    return value


_times: dict[str, datetime | None] = {}


def when(doc: Mapping[str, Any], *keys: str) -> datetime | None:
    """The first of ``keys`` present, as a UTC time (``moment``); JSON null or absent is None.

    Senders repeat the same few times (every firing alert's zero end time), so the
    parsed values are remembered, within a bound.
    """
    for key in keys:
        if key in doc:
            value = doc[key]
            break
    else:
        return None
    if value is None:
        return None
    if type(value) is not str:
        raise Unsure
    try:
        return _times[value]
    except KeyError:
        pass
    try:
        parsed = moment(_TIME.validate_python(value))
    except (ValidationError, PayloadError):
        raise Unsure from None
    if len(_times) >= _TIMES_MAX:
        _times.clear()
    _times[value] = parsed
    return parsed


def first_text(doc: Mapping[str, Any], *keys: str, max_length: int = -1) -> str:
    """The first of ``keys`` present (pydantic's ``AliasChoices``), as ``text``."""
    for key in keys:
        if key in doc:
            return text(doc, key, max_length=max_length)
    return ""


def alerts(doc: Mapping[str, Any], max_length: int = -1) -> list[dict[str, Any]]:
    """The ``alerts`` list: present, not empty, and not longer than ``max_length``."""
    return items(doc.get("alerts"), max_length)


def items(value: Any, max_length: int = -1) -> list[dict[str, Any]]:
    if type(value) is not list or not value or (0 <= max_length < len(value)):
        raise Unsure
    for item in value:
        obj(item)
    return value


_links: dict[tuple[str | None, str | None], Links] = {}


def links(generator: str | None, runbook: str | None) -> Links:
    """``Links`` of a generator and a runbook; equal ones are shared (they are immutable)."""
    key = (generator, runbook)
    found = _links.get(key)
    if found is None:
        if len(_links) >= _LINKS_MAX:
            _links.clear()
        found = _links[key] = Links(generator=generator, runbook=runbook)
    return found


def webhook_alerts(
    doc: Mapping[str, Any],
    make_links: Callable[[Mapping[str, Any], Mapping[str, str]], Links],
    value: Callable[[Mapping[str, Any]], str | None] = lambda _item: None,
) -> list[Alert]:
    """The ``alerts`` of an Alertmanager or Grafana webhook (same fields, their own links)."""
    found = []
    for item in alerts(doc):
        labels = strings(item, "labels", required=True)
        annotations = strings(item, "annotations")
        found.append(
            Alert(
                fingerprint=text(item, "fingerprint") or label_fingerprint(labels),
                status=status(item),
                labels=labels,
                annotations=annotations,
                starts_at=when(item, "startsAt"),
                ends_at=when(item, "endsAt"),
                links=make_links(item, annotations),
                value=value(item),
            )
        )
    return found
