"""Amounts of usage under a plan's prices: rounding, currencies, locales, the schema."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from slack_tools.configs.billing import bill
from slack_tools.configs.schema import PlanPrices
from slack_tools.configs.schema.types import USAGE_METRICS
from slack_tools.storage.usage import METRICS

NNBSP, NBSP = "\u202f", "\xa0"


def prices(currency: str = "EUR", **unit_prices: str) -> PlanPrices:
    return PlanPrices(currency=currency, unit_prices=unit_prices)


def test_the_schema_and_storage_name_the_same_usage_counts() -> None:
    assert USAGE_METRICS == METRICS


def test_each_line_is_rounded_half_up_to_the_cent_and_the_total_adds_the_lines() -> None:
    plan = prices(alerts_received="0.0015", messages_sent="0.002")
    priced = bill({"alerts_received": 1_000_001, "messages_sent": 2_500}, "pro", plan, "fr_FR")
    assert [(line.metric, line.amount) for line in priced.lines] == [
        ("alerts_received", Decimal("1500.00")),  # 1500.0015 → 1500.00
        ("messages_sent", Decimal("5.00")),
    ]
    assert priced.total == Decimal("1505.00")
    assert priced.total_formatted == f"1{NNBSP}505,00{NBSP}€"
    half = bill({"api_calls": 1}, "pro", prices(api_calls="0.005"), "en_US")
    assert half.total == Decimal("0.01")  # half up, not to even


def test_amounts_follow_the_currency_and_the_tenants_locale() -> None:
    yen = bill({"messages_sent": 3}, "jp", prices("JPY", messages_sent="412.5"), "de_DE")
    assert yen.total == Decimal(1238)  # no minor unit
    assert yen.total_formatted == f"1.238{NBSP}¥"
    dollars = bill({"messages_sent": 3}, "us", prices("USD", messages_sent="412.5"), "en_US")
    assert dollars.total_formatted == "$1,237.50"


def test_unpriced_counts_are_not_lines_and_missing_counts_are_zero() -> None:
    priced = bill({"api_calls": 10}, "pro", prices(messages_sent="1"), "it_IT")
    assert [(line.metric, line.count, line.amount) for line in priced.lines] == [
        ("messages_sent", 0, Decimal("0.00"))
    ]


@given(
    counts=st.dictionaries(st.sampled_from(METRICS), st.integers(0, 10**9)),
    unit=st.decimals(min_value=0, max_value=100, places=6, allow_nan=False),
)
def test_the_total_is_always_the_sum_of_the_lines(counts: dict[str, int], unit: Decimal) -> None:
    plan = PlanPrices(currency="EUR", unit_prices=dict.fromkeys(METRICS, unit))
    priced = bill(counts, "pro", plan, "fr_FR")
    assert priced.total == sum(line.amount for line in priced.lines)
    assert all(line.amount.as_tuple().exponent == -2 for line in priced.lines)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"currency": "EURO"}, "ISO 4217"),
        ({"currency": "EUR", "unit_prices": {"alerts": 1}}, "unknown usage counts"),
        ({"currency": "EUR", "unit_prices": {"api_calls": -1}}, "greater than or equal to 0"),
        ({"currency": "EUR", "unit_prices": {"api_calls": "NaN"}}, "finite"),
    ],
)
def test_a_bad_price_table_is_refused_with_the_reason(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        PlanPrices.model_validate(data)
