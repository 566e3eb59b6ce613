"""Payload parsers: each sender's webhook body becomes ``AlertGroup`` objects."""

from __future__ import annotations

from slack_tools.alerts.models import AlertGroup, Source
from slack_tools.alerts.sources import alertmanager, generic, grafana

PARSERS = {
    Source.ALERTMANAGER: alertmanager.parse,
    Source.GRAFANA: grafana.parse,
    Source.GENERIC: generic.parse,
}


def parse(source: Source, body: bytes) -> list[AlertGroup]:
    """Parse a request body from ``source``; raises ``PayloadError`` naming the bad field."""
    return PARSERS[source](body)


__all__ = ["PARSERS", "parse"]
