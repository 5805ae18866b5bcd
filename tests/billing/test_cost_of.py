from decimal import Decimal

from billing.pricing import cost_of
from core.values import ModelPrice, TokenUsage

MINI = ModelPrice(input_per_million=Decimal("0.15"), output_per_million=Decimal("0.60"))


def test_a_nine_token_prompt_costs_exactly_what_the_price_says():
    assert cost_of(TokenUsage(prompt_tokens=9), MINI) == Decimal("0.00000135")


def test_a_million_tiny_costs_sum_without_drift():
    one = cost_of(TokenUsage(prompt_tokens=9, completion_tokens=1), MINI)
    assert one * 1_000_000 == Decimal("1.95")


def test_cached_prompt_tokens_are_billed_at_the_cached_price():
    price = ModelPrice(Decimal("2.50"), Decimal("10"), cached_input_per_million=Decimal("1.25"))
    cost = cost_of(TokenUsage(prompt_tokens=1000, cached_tokens=400, completion_tokens=10), price)
    assert cost == (Decimal(600) * Decimal("2.50") + Decimal(400) * Decimal("1.25") + Decimal(100)) / 1_000_000


def test_cached_tokens_cost_full_price_when_the_deployment_has_no_cached_price():
    assert cost_of(TokenUsage(prompt_tokens=10, cached_tokens=10), MINI) == Decimal("0.0000015")


def test_costs_keep_their_ninth_and_tenth_decimal_places():
    price = ModelPrice(input_per_million=Decimal("0.0123"), output_per_million=Decimal("0.0456"))
    # 7 * 0.0123 + 3 * 0.0456 = 0.2229 per million: 0.0000002229, which 8 places would round to 0.00000022.
    assert cost_of(TokenUsage(prompt_tokens=7, completion_tokens=3), price) == Decimal("0.0000002229")


def test_exact_ties_at_the_eleventh_place_round_to_the_even_neighbour():
    price = ModelPrice(input_per_million=Decimal("0.00005"), output_per_million=Decimal("0.0002"))
    # Each prompt token costs exactly half of 1e-10, each completion token 2e-10.
    assert cost_of(TokenUsage(prompt_tokens=1), price) == Decimal("0E-10")  # 0.5e-10: down to even 0, not up to 1
    assert cost_of(TokenUsage(prompt_tokens=3), price) == Decimal("2E-10")  # 1.5e-10: up to even 2, not down to 1
    assert cost_of(TokenUsage(prompt_tokens=5, completion_tokens=1), price) == Decimal("4E-10")  # 4.5e-10
