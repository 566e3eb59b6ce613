"""Amounts of a tenant's usage under its plan's prices (``tenants.prices``).

Each line is its count times the unit price, rounded half up to the currency's
minor unit (two digits for EUR, none for JPY: CLDR's precision); the total is the
sum of the rounded lines, so the lines a person reads add up to it. Amounts are
``Decimal`` throughout and formatted with Babel in the tenant's locale
("1 234,50 €", "€1,234.50").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import format_currency, get_currency_precision

from slack_tools.configs.schema import PlanPrices


@dataclass(frozen=True, slots=True)
class BillLine:
    metric: str
    count: int
    unit_price: Decimal
    amount: Decimal
    formatted: str


@dataclass(frozen=True, slots=True)
class Bill:
    plan: str
    currency: str
    lines: tuple[BillLine, ...]
    total: Decimal
    total_formatted: str


def bill(counts: Mapping[str, int], plan: str, prices: PlanPrices, locale: str) -> Bill:
    """What ``counts`` (usage metric → count) cost on ``plan``; only priced metrics are lines."""
    minor_unit = Decimal(1).scaleb(-get_currency_precision(prices.currency))

    def money(amount: Decimal) -> str:
        return format_currency(amount, prices.currency, locale=locale)

    lines = []
    for metric, unit_price in prices.unit_prices.items():
        count = counts.get(metric, 0)
        amount = (unit_price * count).quantize(minor_unit, rounding=ROUND_HALF_UP)
        lines.append(BillLine(metric, count, unit_price, amount, money(amount)))
    total = sum((line.amount for line in lines), Decimal(0)).quantize(minor_unit)
    return Bill(plan, prices.currency, tuple(lines), total, money(total))
