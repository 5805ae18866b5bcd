"""What a call costs. Decimal throughout; rounded once, to 10 places, never per token."""

from decimal import ROUND_HALF_EVEN, Decimal

from core.values import ModelPrice, TokenUsage

_MILLION = Decimal(1_000_000)
_PLACES = Decimal("1e-10")


def cost_of(usage: TokenUsage, price: ModelPrice) -> Decimal:
    # Cached prompt tokens are billed at the cached price where the deployment has one.
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    cached_price = price.cached_input_per_million if price.cached_input_per_million is not None else None
    if cached_price is None:
        cached, cached_price = 0, Decimal(0)
    total = (
        (usage.prompt_tokens - cached) * price.input_per_million
        + cached * cached_price
        + usage.completion_tokens * price.output_per_million
    )
    return (total / _MILLION).quantize(_PLACES, rounding=ROUND_HALF_EVEN)
