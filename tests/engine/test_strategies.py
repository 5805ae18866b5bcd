"""The order each strategy tries an alias's eligible deployments in, the reason it gives, and what it ranked by."""

import random
from collections import Counter
from decimal import Decimal

import pytest

from core.values import ModelPrice, RoutingPolicy
from routing.engine.constraints import Needs, eligible
from routing.engine.latency import LatencyBoard
from routing.engine.strategies import (
    DEFAULT_EXPECTED_OUTPUT_TOKENS,
    RoutingState,
    estimated_cost,
    format_dollars,
    order,
)
from tests.engine.test_constraints import target


def price(input_per_million: str, output_per_million: str) -> ModelPrice:
    return ModelPrice(Decimal(input_per_million), Decimal(output_per_million))


def ordered(targets, *, strategy="priority", needs=Needs(), rng=None, state=None, alias="alias", **policy):
    return order(
        targets,
        alias=alias,
        policy=RoutingPolicy(strategy=strategy, **policy),
        needs=needs,
        rng=rng or random.Random(7),
        state=state or RoutingState(),
    )


def names(targets) -> list[str]:
    return [t.deployment for t in targets]


THREE = [target("a"), target("b"), target("c")]


def test_priority_keeps_the_listed_order_with_no_reason():
    assert ordered(THREE, strategy="priority") == (THREE, "", {})


@pytest.mark.parametrize("strategy", ["cascade", "semantic"])
def test_part_two_strategies_route_by_priority_for_now(strategy):
    assert ordered(THREE, strategy=strategy) == (THREE, "part 2: priority order", {})


@pytest.mark.parametrize(
    "strategy", ["priority", "cheapest", "lowest-latency", "weighted", "round-robin", "least-busy"]
)
def test_no_targets_give_an_empty_order(strategy):
    assert ordered([], strategy=strategy, weights=(("a", 1.0),)) == ([], "", {})


def test_an_unknown_strategy_still_routes_by_priority():
    assert ordered(THREE, strategy="fastest-please") == (THREE, "unknown strategy: priority order", {})


# --- cheapest ----------------------------------------------------------------------------------------------------


def test_the_estimated_cost_is_the_exact_decimal_of_prompt_and_output_prices():
    cost = estimated_cost(target("a", price=price("0.15", "0.60")), prompt_tokens=1234, output_tokens=56)
    assert cost == Decimal("0.0002187")
    assert isinstance(cost, Decimal)


def test_cheapest_tries_the_cheapest_for_this_request_first():
    targets = [
        target("premium", price=price("10", "30")),
        target("cheap", price=price("0.1", "0.2")),
        target("mid", price=price("1", "2")),
    ]

    tried, reason, estimates = ordered(targets, strategy="cheapest", needs=Needs(prompt_tokens=1000, output_tokens=100))

    assert names(tried) == ["cheap", "mid", "premium"]
    assert reason == "est. $0.00012"
    assert estimates == {"cheap": "$0.00012", "mid": "$0.0012", "premium": "$0.013"}


def test_cheapest_prices_an_unstated_output_at_the_default():
    # Cheap input, dear output, against the reverse: which is cheaper turns on the output tokens priced.
    targets = [target("dear-output", price=price("0.1", "100")), target("dear-input", price=price("10", "0.1"))]
    prompt = 1000
    crossover = int(prompt * (10 - 0.1) / (100 - 0.1))  # about 99 output tokens
    assert crossover < DEFAULT_EXPECTED_OUTPUT_TOKENS

    unstated, _, _ = ordered(targets, strategy="cheapest", needs=Needs(prompt_tokens=prompt, output_tokens=0))
    short, _, _ = ordered(targets, strategy="cheapest", needs=Needs(prompt_tokens=prompt, output_tokens=10))

    assert names(unstated) == ["dear-input", "dear-output"]
    assert names(short) == ["dear-output", "dear-input"]


def test_cheapest_breaks_ties_by_the_listed_order():
    targets = [target(name, price=price("1", "1")) for name in ("x", "y", "z")]
    tried, _, _ = ordered(targets, strategy="cheapest", needs=Needs(prompt_tokens=10))
    assert names(tried) == ["x", "y", "z"]


def test_cheapest_never_picks_a_cheaper_deployment_below_the_quality_floor():
    targets = [
        target("bargain", price=price("0.01", "0.01"), quality=0.4),
        target("good", price=price("3", "15"), quality=0.9),
        target("fair", price=price("1", "2"), quality=0.75),
    ]
    needs = Needs(prompt_tokens=500, min_quality=0.7)

    candidates, skipped = eligible(targets, needs)
    tried, reason, estimates = ordered(candidates, strategy="cheapest", needs=needs)

    assert names(tried) == ["fair", "good"]
    assert [(s.deployment, s.reason) for s in skipped] == [("bargain", "quality")]
    assert "bargain" not in estimates
    assert reason == "est. $0.00101"


@pytest.mark.parametrize(
    ("amount", "shown"),
    [("0", "$0"), ("0.000123456", "$0.000123"), ("0.0011", "$0.0011"), ("0.00099951", "$0.001"), ("12.345", "$12.35")],
)
def test_estimates_read_to_three_significant_digits_or_to_the_cent(amount, shown):
    assert format_dollars(Decimal(amount)) == shown


# --- lowest-latency ----------------------------------------------------------------------------------------------


def board_with(**latencies_ms) -> LatencyBoard:
    board = LatencyBoard(clock=lambda: 0.0)
    for deployment, ms in latencies_ms.items():
        board.observe(deployment, latency_ms=ms)
    return board


def test_lowest_latency_without_any_samples_keeps_the_listed_order():
    tried, reason, estimates = ordered(THREE, strategy="lowest-latency", state=RoutingState(latency=board_with()))
    assert names(tried) == ["a", "b", "c"]
    assert reason == "no samples yet"
    assert estimates == {"a": "no samples", "b": "no samples", "c": "no samples"}


def test_lowest_latency_tries_the_fastest_first_and_unknown_ones_last():
    targets = [target(name) for name in ("unmeasured", "slow", "fast", "also-unmeasured", "mid")]
    state = RoutingState(latency=board_with(slow=900, fast=312.4, mid=450))

    tried, reason, estimates = ordered(targets, strategy="lowest-latency", rng=random.Random(1), state=state)

    assert names(tried) == ["fast", "mid", "slow", "unmeasured", "also-unmeasured"]
    assert reason == "ewma 312 ms"
    assert estimates == {
        "fast": "312 ms",
        "mid": "450 ms",
        "slow": "900 ms",
        "unmeasured": "no samples",
        "also-unmeasured": "no samples",
    }


def test_lowest_latency_breaks_ties_by_the_listed_order():
    state = RoutingState(latency=board_with(a=100, b=100, c=100))
    tried, _, _ = ordered(list(reversed(THREE)), strategy="lowest-latency", state=state)
    assert names(tried) == ["c", "b", "a"]


def test_an_unmeasured_deployment_is_tried_first_about_one_call_in_twenty():
    targets = [target("fast"), target("new-1"), target("new-2")]
    state = RoutingState(latency=board_with(fast=100))
    rng = random.Random(2024)

    firsts = Counter()
    for _ in range(10_000):
        tried, reason, _ = ordered(targets, strategy="lowest-latency", rng=rng, state=state)
        firsts[tried[0].deployment] += 1
        if tried[0].deployment != "fast":
            assert names(tried)[1] == "fast"
            assert reason == "exploring: no samples yet"

    explored = firsts["new-1"] + firsts["new-2"]
    assert 0.04 < explored / 10_000 < 0.06
    assert firsts["new-1"] > 150 and firsts["new-2"] > 150  # either one, not always the first listed


def test_a_stream_is_ranked_by_time_to_first_token():
    board = LatencyBoard(clock=lambda: 0.0)
    board.observe("long-but-quick-to-start", latency_ms=5000, ttfb_ms=150)
    board.observe("short-but-slow-to-start", latency_ms=1000, ttfb_ms=800)
    targets = [target("short-but-slow-to-start"), target("long-but-quick-to-start")]
    state = RoutingState(latency=board)

    whole, _, _ = ordered(targets, strategy="lowest-latency", needs=Needs(stream=False), state=state)
    streamed, reason, _ = ordered(targets, strategy="lowest-latency", needs=Needs(stream=True), state=state)

    assert names(whole) == ["short-but-slow-to-start", "long-but-quick-to-start"]
    assert names(streamed) == ["long-but-quick-to-start", "short-but-slow-to-start"]
    assert reason == "ewma 150 ms"


# --- weighted ----------------------------------------------------------------------------------------------------


def test_weighted_picks_the_first_in_proportion_to_the_weights():
    targets = [target("cheap-llama"), target("premium-gpt4")]
    rng = random.Random(11)

    firsts = Counter()
    for _ in range(10_000):
        tried, _, _ = ordered(
            targets, strategy="weighted", rng=rng, weights=(("cheap-llama", 3.0), ("premium-gpt4", 1.0))
        )
        firsts[tried[0].deployment] += 1
        assert sorted(names(tried)) == ["cheap-llama", "premium-gpt4"]

    assert abs(firsts["cheap-llama"] / 10_000 - 0.75) < 0.015


def test_weighted_fails_over_by_weighted_draws_without_replacement():
    # a:2, b:1, c:1. The second is a with 1/2*0 + 1/4*2/3 + 1/4*2/3 = 1/3, and b, c with 1/3 each: drawn again
    # from what is left, not in listed order (which would give b 1/2 + 1/4).
    weights = (("a", 2.0), ("b", 1.0), ("c", 1.0))
    rng = random.Random(5)

    seconds = Counter()
    for _ in range(10_000):
        tried, _, _ = ordered(THREE, strategy="weighted", rng=rng, weights=weights)
        assert sorted(names(tried)) == ["a", "b", "c"]
        seconds[tried[1].deployment] += 1

    for name in ("a", "b", "c"):
        assert abs(seconds[name] / 10_000 - 1 / 3) < 0.02


def test_weighted_tries_zero_weight_deployments_last_in_listed_order():
    targets = [target(name) for name in ("z1", "w", "z2", "z3")]
    for seed in range(50):
        tried, reason, estimates = ordered(
            targets, strategy="weighted", rng=random.Random(seed), weights=(("w", 2.0), ("z2", 0.0))
        )
        assert names(tried) == ["w", "z1", "z2", "z3"]  # unlisted ones weigh 0 when weights are given
    assert reason == "weight 2/2"
    assert estimates == {"w": "weight 2", "z1": "weight 0", "z2": "weight 0", "z3": "weight 0"}


def test_weighted_says_the_weight_of_the_one_it_picked():
    weights = (("a", 3.0), ("b", 1.0))
    reasons = {ordered(THREE[:2], strategy="weighted", rng=random.Random(s), weights=weights)[1] for s in range(40)}
    assert reasons == {"weight 3/4", "weight 1/4"}


def test_weighted_with_every_weighted_deployment_skipped_keeps_the_listed_order():
    tried, reason, _ = ordered(THREE, strategy="weighted", weights=(("gone", 5.0),))
    assert names(tried) == ["a", "b", "c"]
    assert reason == "no weights: priority order"


def test_the_weighted_order_comes_from_the_random_it_is_handed_alone():
    weights = (("a", 1.0), ("b", 1.0), ("c", 1.0))

    def twenty_orders(rng):
        return [names(ordered(THREE, strategy="weighted", rng=rng, weights=weights)[0]) for _ in range(20)]

    first = twenty_orders(random.Random(3))
    random.seed(99)  # the module's own random must play no part
    assert twenty_orders(random.Random(3)) == first
    assert len({tuple(o) for o in first}) > 1


# --- round-robin -------------------------------------------------------------------------------------------------


def test_round_robin_rotates_one_place_per_call():
    state = RoutingState()
    seen = [ordered(THREE, strategy="round-robin", state=state) for _ in range(4)]

    assert [names(tried) for tried, _, _ in seen] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]
    assert [reason for _, reason, _ in seen] == ["turn 1 of 3", "turn 2 of 3", "turn 3 of 3", "turn 1 of 3"]


def test_round_robin_keeps_a_turn_per_alias():
    state = RoutingState()
    ordered(THREE, strategy="round-robin", state=state, alias="one")
    tried, _, _ = ordered(THREE, strategy="round-robin", state=state, alias="two")
    assert names(tried) == ["a", "b", "c"]
    assert state.round_robin == {"one": 1, "two": 1}


def test_round_robin_copes_with_the_list_shrinking_under_it():
    state = RoutingState(round_robin={"alias": 2})
    tried, reason, _ = ordered(THREE[:2], strategy="round-robin", state=state)
    assert names(tried) == ["a", "b"]
    assert reason == "turn 1 of 2"
    assert state.round_robin["alias"] == 1


# --- least-busy --------------------------------------------------------------------------------------------------


def test_least_busy_tries_the_one_with_fewest_calls_in_flight_first():
    state = RoutingState(in_flight={"a": 3, "b": 2, "c": 2})
    tried, reason, estimates = ordered(THREE, strategy="least-busy", state=state)
    assert names(tried) == ["b", "c", "a"]
    assert reason == "2 in flight"
    assert estimates == {"b": "2 in flight", "c": "2 in flight", "a": "3 in flight"}


def test_least_busy_counts_a_deployment_it_has_not_seen_as_idle():
    tried, reason, _ = ordered(THREE, strategy="least-busy", state=RoutingState(in_flight={"a": 1, "b": 1}))
    assert names(tried) == ["c", "a", "b"]
    assert reason == "0 in flight"
