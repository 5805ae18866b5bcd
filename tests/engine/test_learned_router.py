"""The learned router's model (routing/engine/learned.py), without Django: training is repeatable, it learns which
deployment does well on which kind of prompt, it survives storage, and at request time it takes the cheapest
deployment predicted to meet the floor, else the best predicted; bad training lines are refused by line number."""

import json
from decimal import Decimal

import pytest

from core.values import ModelPrice, Target
from routing.engine import learned

DEPLOYMENTS = ("cheap", "premium")
# cheap is good at SQL and bad at poems; premium is good at both.
EXAMPLES = [
    (f"Fix this SQL query number {n}: select the orders of customer {n}", {"cheap": 1.0, "premium": 1.0})
    for n in range(30)
] + [(f"Write a sonnet about the sea and the moon, poem {n}", {"cheap": 0.0, "premium": 1.0}) for n in range(30)]
SQL = "Fix this SQL: SELECT name FROM users WHERE age > 30"
POEM = "Write a sonnet about autumn leaves and the moon"


def target(name: str, price: str) -> Target:
    return Target(
        deployment=name,
        provider="p",
        kind="openai",
        base_url="http://upstream",
        model=name,
        price=ModelPrice(Decimal(price), Decimal(price)),
    )


TARGETS = [target("premium", "10"), target("cheap", "1")]
COSTS = [Decimal(10), Decimal(1)]


@pytest.fixture(scope="module")
def model() -> learned.LearnedModel:
    return learned.train(EXAMPLES, DEPLOYMENTS)


def test_the_same_examples_and_seed_give_the_same_bytes_and_another_seed_does_not(model):
    again = learned.train(EXAMPLES, DEPLOYMENTS)
    other_seed = learned.train(EXAMPLES, DEPLOYMENTS, seed=learned.SEED + 1)

    assert learned.to_bytes(again) == learned.to_bytes(model)
    assert learned.to_bytes(other_seed) != learned.to_bytes(model)


def test_it_predicts_the_cheap_deployment_good_at_sql_and_poor_at_poems(model):
    sql, poem = model.predict(SQL), model.predict(POEM)

    assert sql["cheap"] > 0.7 and poem["cheap"] < 0.3
    assert sql["premium"] > 0.8 and poem["premium"] > 0.8


def test_a_stored_model_predicts_what_the_trained_one_does(model):
    blob = learned.to_bytes(model)
    loaded = learned.from_bytes(blob, version=3)

    assert loaded.version == 3 and loaded.deployments == DEPLOYMENTS
    assert loaded.predict(POEM) == model.predict(POEM)
    assert len(blob) < 200_000  # 2 x 16,385 float32 weights, mostly zero, compressed


def test_a_blob_of_another_kind_is_refused():
    import zlib

    with pytest.raises(ValueError, match="not a learned router model"):
        learned.from_bytes(zlib.compress(b"something else entirely"))


def test_the_cheapest_deployment_predicted_to_meet_the_floor_goes_first(model):
    ordered, reason, estimates = learned.choose(TARGETS, model, text=SQL, floor=0.7, trade_off=0.0, costs=COSTS)

    assert [t.deployment for t in ordered] == ["cheap", "premium"]
    assert reason.startswith("v0, floor 0.7: cheap 0.")
    assert set(estimates) == {"cheap", "premium"} and estimates["cheap"].startswith("predicted 0.")


def test_a_prompt_the_cheap_one_is_predicted_to_fail_goes_to_the_one_that_meets_the_floor(model):
    ordered, reason, _ = learned.choose(TARGETS, model, text=POEM, floor=0.7, trade_off=0.0, costs=COSTS)

    assert [t.deployment for t in ordered] == ["premium", "cheap"]
    assert reason.startswith("v0, floor 0.7: premium 0.")


def test_when_no_deployment_meets_the_floor_the_best_predicted_goes_first_and_says_so(model):
    ordered, reason, _ = learned.choose(TARGETS, model, text=POEM, floor=0.9999, trade_off=0.0, costs=COSTS)

    assert ordered[0].deployment == "premium"
    assert reason.startswith("v0, floor 0.9999 unmet: premium 0.") and reason.endswith(" (best predicted)")


def test_without_a_floor_the_best_predicted_goes_first_unless_the_trade_off_makes_cost_outweigh_it(model):
    no_floor, reason, _ = learned.choose(TARGETS, model, text=POEM, floor=None, trade_off=0.0, costs=COSTS)
    costly, costly_reason, _ = learned.choose(TARGETS, model, text=POEM, floor=None, trade_off=5.0, costs=COSTS)

    assert no_floor[0].deployment == "premium" and reason.startswith("v0: premium 0.")
    assert costly[0].deployment == "cheap"  # 5 x (10/10) outweighs the quality premium adds
    assert costly_reason.startswith("v0, trade-off 5: cheap 0.")


def test_with_a_floor_the_trade_off_chooses_only_among_those_that_meet_it(model):
    ordered, reason, _ = learned.choose(TARGETS, model, text=POEM, floor=0.7, trade_off=5.0, costs=COSTS)

    assert ordered[0].deployment == "premium"  # the cheap one is the better value, but predicted below the floor
    assert reason.startswith("v0, floor 0.7, trade-off 5: premium 0.")


def test_a_deployment_the_model_never_saw_goes_last(model):
    targets = [target("new-one", "0.1"), *TARGETS]

    ordered, _, estimates = learned.choose(
        targets, model, text=SQL, floor=0.5, trade_off=0.0, costs=[Decimal("0.1"), *COSTS]
    )

    assert ordered[-1].deployment == "new-one" and estimates["new-one"] == "not trained"


def lines(*items) -> list[str]:
    return [item if isinstance(item, str) else json.dumps(item) for item in items]


def test_good_lines_parse_and_blank_lines_are_skipped():
    examples, errors = learned.parse_lines(
        lines({"prompt": "hi", "scores": {"cheap": 1, "premium": 0.5}}, "", {"prompt": "yo", "scores": {"cheap": 0}}),
        deployments=DEPLOYMENTS,
    )

    assert errors == []
    assert examples == [("hi", {"cheap": 1.0, "premium": 0.5}), ("yo", {"cheap": 0.0})]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not JSON"),
        ({"prompt": "hi", "scores": {"gpt-9": 1}}, "line 2: scores names 'gpt-9', not one of the alias's deployments"),
        ({"prompt": "hi", "scores": {"cheap": 1.5}}, "line 2: scores.cheap must be a number from 0 to 1"),
        ({"prompt": "hi", "scores": {"cheap": True}}, "line 2: scores.cheap must be a number from 0 to 1"),
        ({"prompt": "", "scores": {"cheap": 1}}, "line 2: prompt must be a non-empty string"),
        ({"prompt": "hi", "scores": {}}, "line 2: scores must be a non-empty mapping"),
        ({"prompt": "hi", "scores": {"cheap": 1}, "extra": 1}, "line 2: unknown key 'extra'"),
        ([1, 2], "line 2: must be an object"),
        ({"prompt": "x" * (learned.MAX_PROMPT_CHARS + 1), "scores": {"cheap": 1}}, "line 2: prompt is longer"),
    ],
)
def test_a_bad_line_is_named_by_its_number(line, message):
    _, errors = learned.parse_lines(lines({"prompt": "fine", "scores": {"cheap": 1}}, line), deployments=DEPLOYMENTS)

    assert len(errors) == 1 and errors[0].startswith(message), errors


def test_an_empty_file_is_refused():
    assert learned.parse_lines(["", "  "], deployments=DEPLOYMENTS) == ([], ["the file has no examples"])
