"""What the parsers share: JSON decoding with field-precise errors, times, links."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from slack_tools.errors import PayloadError

ModelT = TypeVar("ModelT")

# Alertmanager and Grafana send this for "no end yet".
ZERO_TIME_YEAR = 1


class Payload(BaseModel):
    """Base of the payload models: unknown fields are kept out, not refused (senders evolve)."""

    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)


def decode(adapter: TypeAdapter[ModelT], body: bytes, what: str) -> ModelT:
    """Validate ``body`` as JSON of ``adapter``'s type; errors name each field, never its value."""
    if b"\\u0000" in body:
        # PostgreSQL text cannot hold NUL, and no label or message needs one.
        raise PayloadError(
            f"the body is not a valid {what} payload",
            errors=[{"field": "<body>", "message": "NUL characters (\\u0000) are not accepted"}],
        )
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if errors and errors[0]["type"] in ("json_invalid", "json_type"):
            detail = str(errors[0].get("msg", "invalid JSON"))
            raise PayloadError(f"the body is not valid JSON: {detail}", malformed=True) from None
        fields = [
            {
                "field": ".".join(str(p) for p in error["loc"]) or "<body>",
                "message": str(error["msg"]).removeprefix("Value error, "),
            }
            for error in errors
        ]
        raise PayloadError(f"the body is not a valid {what} payload", errors=fields) from None


def moment(value: datetime | None) -> datetime | None:
    """A UTC time, or None for a missing or zero time (0001-01-01)."""
    if value is None or value.year <= ZERO_TIME_YEAR:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-23:59 has no UTC equivalent
        raise PayloadError(
            "a time is out of range",
            errors=[{"field": "startsAt/endsAt", "message": "not representable in UTC"}],
        ) from None


def link(value: str | None) -> str | None:
    """Only http(s) links are kept: they end up as buttons in Slack."""
    if value and value.startswith(("http://", "https://")):
        return value
    return None


def _quoted(value: str) -> str:
    """A label value inside Alertmanager's double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def alertmanager_silence_url(external_url: str | None, labels: Mapping[str, str]) -> str | None:
    """Alertmanager's "new silence" page prefilled with the alert's labels."""
    base = link(external_url)
    if base is None or not labels:
        return None
    matchers = ",".join(f'{name}="{_quoted(value)}"' for name, value in sorted(labels.items()))
    return f"{base.rstrip('/')}/#/silences/new?filter={quote('{' + matchers + '}', safe='')}"


def str_mapping(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}
