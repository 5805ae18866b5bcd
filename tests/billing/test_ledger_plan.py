"""What a request reserves, and from which counters: pure functions, hand-computed numbers."""

from datetime import UTC, datetime
from decimal import Decimal

from billing.ledger.counters import budget_period, minute_window, ticks_to_usd, usd_to_ticks
from billing.ledger.plan import DEFAULT_OUTPUT_RESERVE, counters_for, has_limits, needs_worst_case, worst_case
from core.values import BudgetRule, ModelPrice, RateRule, Snapshot, Target
from tests.factories import principal

HI = {"messages": [{"role": "user", "content": "Hi"}]}  # 3 + 1 + 3 = 7 prompt tokens


def target(name: str, price_in: str, price_out: str, max_output: int | None = None) -> Target:
    price = ModelPrice(input_per_million=Decimal(price_in), output_per_million=Decimal(price_out))
    return Target(name, "p", "openai", "http://x", name, price, max_output_tokens=max_output)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_the_worst_case_is_priced_at_the_dearest_deployment_fail_over_could_reach():
    targets = (target("cheap", "1", "2"), target("dear", "10", "30"))

    need = worst_case({**HI, "max_tokens": 100}, targets, endpoint="chat.completions")

    assert (need.prompt_tokens, need.output_tokens) == (7, 100)
    assert need.cost_usd == Decimal("0.00307")  # (7 × 10 + 100 × 30) / 1M


def test_output_reserve_falls_back_to_the_deployments_maximum_then_a_default():
    capped = worst_case({**HI, "max_completion_tokens": 9000}, (target("a", "1", "1", 4000),), endpoint="chat")
    uncapped = worst_case(HI, (target("a", "1", "1", 4000), target("b", "1", "1", 16000)), endpoint="chat")
    unknown = worst_case(HI, (target("a", "1", "1"),), endpoint="chat")
    embeddings = worst_case({"input": "Hi there"}, (target("e", "1", "0"),), endpoint="embeddings")

    assert (capped.output_tokens, uncapped.output_tokens) == (4000, 16000)
    assert unknown.output_tokens == DEFAULT_OUTPUT_RESERVE
    assert (embeddings.prompt_tokens, embeddings.output_tokens) == (2, 0)


def test_periods_are_utc_days_and_calendar_months():
    assert budget_period("daily", at("2026-11-24T17:05:00")) == (at("2026-11-24T00:00:00"), at("2026-11-25T00:00:00"))
    assert budget_period("monthly", at("2028-02-29T23:59:59")) == (at("2028-02-01T00:00:00"), at("2028-03-01T00:00:00"))
    assert minute_window(at("2026-11-24T17:05:42")) == (at("2026-11-24T17:05:00"), at("2026-11-24T17:06:00"))


def test_dollars_are_counted_in_exact_ticks():
    assert usd_to_ticks(Decimal("0.0000000001")) == 1
    assert ticks_to_usd(usd_to_ticks(Decimal("123.4567890123"))) == Decimal("123.4567890123")


def test_a_call_reserves_from_its_key_team_subscription_and_every_budget_that_covers_it():
    budget = BudgetRule(7, "tenant", 1, "monthly", Decimal("5"), 1000, "block")
    snapshot = Snapshot(
        team_limits={2: RateRule(rpm=100)},
        subscription_limits={9: RateRule(tpm=50_000)},
        budgets={("tenant", 1): (budget,), ("team", 99): (budget,)},
    )
    need = worst_case({**HI, "max_tokens": 20}, (target("a", "1000", "2000"),), endpoint="chat")
    now = at("2026-11-24T17:05:42")

    counters = counters_for(snapshot, principal(rpm=10), subscription_id=9, need=need, now=now)

    minute = int(at("2026-11-24T17:05:00") // 60)
    month = int(at("2026-11-01T00:00:00"))
    assert [(c.key, c.limit, c.amount) for c in counters] == [
        (f"rpm:key:3:{minute}", 10, 1),
        (f"rpm:team:2:{minute}", 100, 1),
        (f"tpm:subscription:9:{minute}", 50_000, 27),
        (f"budget:7:usd:{month}", 5 * 10**10, 470_000_000),  # $0.047
        (f"budget:7:tokens:{month}", 1000, 27),
    ]
    assert has_limits(snapshot, principal(), subscription_id=None)  # the tenant budget covers it
    assert not has_limits(Snapshot(), principal(), subscription_id=None)


def test_an_unenforced_downgrade_budget_still_counts_but_never_refuses():
    budget = BudgetRule(7, "key", 3, "daily", Decimal("1"), None, "downgrade", "cheap")
    snapshot = Snapshot(budgets={("key", 3): (budget,)})
    need = worst_case(HI, (target("a", "1", "1", 10),), endpoint="chat")

    (counter,) = counters_for(
        snapshot, principal(), subscription_id=None, need=need, now=0, unenforced_budgets=frozenset({7})
    )

    assert (counter.limit, counter.amount) == (None, usd_to_ticks(need.cost_usd))


def test_only_token_limits_and_budgets_need_the_prompt_counted():
    budget = BudgetRule(7, "team", 2, "daily", Decimal("1"), None, "block")
    rpm_only = Snapshot(team_limits={2: RateRule(rpm=60)}, subscription_limits={5: RateRule(rpm=30)})

    assert not needs_worst_case(rpm_only, principal(rpm=10), subscription_id=5)
    assert needs_worst_case(rpm_only, principal(tpm=1000), subscription_id=5)
    assert needs_worst_case(Snapshot(team_limits={2: RateRule(tpm=500)}), principal(), subscription_id=None)
    assert needs_worst_case(Snapshot(subscription_limits={5: RateRule(tpm=500)}), principal(), subscription_id=5)
    assert needs_worst_case(Snapshot(budgets={("team", 2): (budget,)}), principal(rpm=10), subscription_id=None)
