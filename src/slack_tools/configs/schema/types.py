"""The building blocks of the configuration models: value types and their checks.

The enumerations (environments, severities, isolation modes), the read-only
:class:`FrozenDict` every validated mapping becomes, the ``Annotated`` types that
check one value (locale, time zone, threshold, channel, label matcher, bounds),
the :func:`runtime` field metadata and :class:`Section`, the base of every model.
"""

from __future__ import annotations

import re
import types
import zoneinfo
from collections.abc import Iterator, Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from babel.numbers import list_currencies
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

from slack_tools.configs.matchers import parse_matcher

Path = tuple[str | int, ...]

SUPPORTED_LOCALES: tuple[str, ...] = ("fr_FR", "en_US", "de_DE", "es_ES", "it_IT")


class EnvName(StrEnum):
    """The three environments of the specification."""

    DEV = "dev"
    STAGING = "staging"
    PRODUCTION = "production"


class Severity(StrEnum):
    """Alert severities, lowest first; comparisons follow that order."""

    NONE = "none"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = tuple(Severity)

THRESHOLD_ALIASES: Mapping[str, Severity] = types.MappingProxyType(
    {
        "all": Severity.NONE,
        "warning_and_above": Severity.WARNING,
        "critical_only": Severity.CRITICAL,
    }
)


class IsolationMode(StrEnum):
    """How a tenant's data is separated from the others' (see the tenants guide)."""

    LOGICAL = "logical"
    PARTIAL = "partial"
    STRICT = "strict"


class FrozenDict(Mapping[str, Any]):
    """A read-only mapping that copies and pickles (``MappingProxyType`` does neither)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._data.items(), key=lambda item: item[0])))

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        return (FrozenDict, (self._data,))


def _freeze_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return FrozenDict(value)


def _check_locale(value: str) -> str:
    if value not in SUPPORTED_LOCALES:
        raise ValueError(f"expected one of {', '.join(SUPPORTED_LOCALES)}")
    return value


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone name such as Europe/Paris") from None
    return value


def _check_threshold(value: str) -> str:
    if value in THRESHOLD_ALIASES or value in Severity.__members__.values():
        return value
    choices = [*THRESHOLD_ALIASES, *(s.value for s in Severity)]
    raise ValueError(f"expected one of {', '.join(choices)}")


_CHANNEL = re.compile(r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{6,})$")


def _check_channel(value: str) -> str:
    if not _CHANNEL.match(value):
        raise ValueError(
            "expected a channel name like #alerts (lowercase) or a channel ID like C0123ABCD"
        )
    return value


def _check_matcher(value: str) -> str:
    parse_matcher(value)  # raises ValueError saying what was expected
    return value


def _check_currency(value: str) -> str:
    if value not in list_currencies():
        raise ValueError(f"expected an ISO 4217 currency code such as EUR or USD, got {value!r}")
    return value


USAGE_METRICS = ("alerts_received", "messages_sent", "messages_held", "dead_letters", "api_calls")


def _check_usage_metrics(prices: Mapping[str, Decimal]) -> Mapping[str, Decimal]:
    unknown = sorted(set(prices) - set(USAGE_METRICS))
    if unknown:
        raise ValueError(f"unknown usage counts {unknown}: expected {', '.join(USAGE_METRICS)}")
    return prices


QUOTA_NAME = re.compile(r"(alerts|messages|admin_calls)_per_(second|minute|hour|day)")


def _check_quota_names(limits: Mapping[str, int]) -> Mapping[str, int]:
    # A quota the service does not count would look enforced and be ignored.
    unknown = sorted(name for name in limits if not QUOTA_NAME.fullmatch(name))
    if unknown:
        raise ValueError(
            f"unknown quotas {unknown}: name them alerts, messages or admin_calls, then "
            "_per_ second, minute, hour or day (alerts_per_minute, messages_per_hour…)"
        )
    return limits


def _check_pattern(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"expected a regular expression: {exc}") from None
    return value


Port = Annotated[int, Field(ge=1, le=65535)]
PositiveInt = Annotated[int, Field(ge=1)]
LocaleName = Annotated[str, AfterValidator(_check_locale)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
Threshold = Annotated[str, AfterValidator(_check_threshold)]
ChannelName = Annotated[str, AfterValidator(_check_channel)]
Matcher = Annotated[str, AfterValidator(_check_matcher)]
Pattern = Annotated[str, AfterValidator(_check_pattern)]
CurrencyCode = Annotated[str, AfterValidator(_check_currency)]
UnitPrices = Annotated[
    Mapping[str, Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]],
    AfterValidator(_check_usage_metrics),
    AfterValidator(_freeze_mapping),
    PlainSerializer(lambda prices: {name: str(price) for name, price in prices.items()}),
]
QuotaLimits = Annotated[
    Mapping[str, PositiveInt],
    AfterValidator(_check_quota_names),
    AfterValidator(_freeze_mapping),
    PlainSerializer(dict, return_type=dict),
]
TemplateSources = Annotated[
    Mapping[str, str],
    AfterValidator(_freeze_mapping),
    PlainSerializer(dict, return_type=dict),
]
PlanQuotaLimits = Annotated[
    Mapping[str, QuotaLimits],
    AfterValidator(_freeze_mapping),
    PlainSerializer(lambda plans: {name: dict(limits) for name, limits in plans.items()}),
]
PositiveFloat = Annotated[float, Field(gt=0)]
Ratio = Annotated[float, Field(gt=0, le=1)]


def runtime(**extra: Any) -> dict[str, Any]:
    """Field metadata marking a key as changeable in the global overrides document."""
    return {"runtime": True, **extra}


class Section(BaseModel):
    """Base of every configuration model: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
