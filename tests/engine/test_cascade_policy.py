"""The `cascade:` mapping of an alias's `routing:` (routing/engine/policy.py): parsed, bounded, refused with errors
that name their path, and exported back to what parses to the same policy."""

from decimal import Decimal

import pytest

from routing.engine.policy import parse_policy, policy_to_dict

DEPLOYMENTS = ("cheap-llama", "mid-mixtral", "premium-gpt4")
ISSUE_EXAMPLE = {
    "strategy": "cascade",
    "cascade": {
        "steps": ["cheap-llama", "premium-gpt4"],
        "checks": [
            {"type": "not-truncated"},
            {"type": "json"},
            {"type": "regex", "pattern": "^[A-D]$"},
            {"type": "webhook", "url": "https://verifier.internal/check", "pass_score": 0.5},
        ],
        "max_cost_usd": "0.05",
    },
}


def parse(routing):
    return parse_policy(routing, path="aliases[0].routing", deployments=DEPLOYMENTS)


def test_the_issues_example_parses_to_steps_checks_and_a_decimal_budget():
    policy, problems = parse(ISSUE_EXAMPLE)

    assert problems == []
    assert policy.strategy == "cascade"
    assert policy.cascade.steps == ("cheap-llama", "premium-gpt4")
    assert [c.type for c in policy.cascade.checks] == ["not-truncated", "json", "regex", "webhook"]
    assert policy.cascade.checks[2].pattern == "^[A-D]$"
    assert policy.cascade.checks[3].url == "https://verifier.internal/check"
    assert policy.cascade.max_cost_usd == Decimal("0.05")


def test_export_then_import_changes_nothing():
    every_check = {
        "strategy": "cascade",
        "cascade": {
            "steps": ["cheap-llama", "mid-mixtral", "premium-gpt4"],
            "checks": [
                {"type": "not-empty"},
                {"type": "refusal", "phrases": ["I won't"]},
                {"type": "min-logprob", "threshold": -0.7},
                {"type": "webhook", "url": "http://verifier:8080/v", "pass_score": 0.8, "timeout_ms": 500},
            ],
        },
    }
    for routing in (ISSUE_EXAMPLE, every_check):
        policy, problems = parse(routing)
        exported = policy_to_dict(policy)
        again, problems_again = parse(exported)
        assert problems == problems_again == []
        assert again == policy
        assert policy_to_dict(again) == exported


@pytest.mark.parametrize(
    ("cascade", "expected"),
    [
        (
            {"steps": ["cheap-llama"], "checks": [{"type": "json"}]},
            "cascade.steps: must name 2 to 5 deployments, not 1",
        ),
        (
            {"steps": ["cheap-llama", "gpt-9"], "checks": [{"type": "json"}]},
            "cascade.steps[1]: is not one of this alias's deployments",
        ),
        (
            {"steps": ["cheap-llama", "cheap-llama"], "checks": [{"type": "json"}]},
            "cascade.steps[1]: is listed twice",
        ),
        ({"steps": ["cheap-llama", "premium-gpt4"], "checks": []}, "cascade.checks: must be a list of checks"),
        (
            {"steps": ["cheap-llama", "premium-gpt4"], "checks": [{"type": "vibes"}]},
            "cascade.checks[0].type: must be one of not-empty, not-truncated, json, refusal, regex, min-logprob",
        ),
        (
            {"steps": ["cheap-llama", "premium-gpt4"], "checks": [{"type": "json", "pattern": "x"}]},
            "cascade.checks[0].pattern: unknown key for json",
        ),
        (
            {"steps": ["cheap-llama", "premium-gpt4"], "checks": [{"type": "regex"}]},
            "cascade.checks[0].pattern: a regex check needs pattern",
        ),
        (
            {"steps": ["cheap-llama", "premium-gpt4"], "checks": [{"type": "regex", "pattern": "(["}]},
            "cascade.checks[0].pattern: is not a valid regular expression",
        ),
        (
            {"steps": ["cheap-llama", "premium-gpt4"], "checks": [{"type": "regex", "pattern": "a" * 501}]},
            "cascade.checks[0].pattern: must be a regular expression of 1 to 500 characters",
        ),
        (
            {"steps": ["cheap-llama", "premium-gpt4"], "checks": [{"type": "webhook", "url": "ftp://x/y"}]},
            "cascade.checks[0].url: must be an http or https URL",
        ),
        (
            {"steps": ["cheap-llama", "premium-gpt4"], "checks": [{"type": "webhook", "url": "https://u:p@x/y"}]},
            "cascade.checks[0].url: must be an http or https URL",
        ),
        (
            {"steps": ["cheap-llama", "premium-gpt4"], "checks": [{"type": "webhook", "url": "https://" + "a" * 2000}]},
            "cascade.checks[0].url: must be an http or https URL of at most 2000 characters",
        ),
        (
            {
                "steps": ["cheap-llama", "premium-gpt4"],
                "checks": [{"type": "webhook", "url": "https://v/", "pass_score": 2}],
            },
            "cascade.checks[0].pass_score: must be from 0 to 1, not 2",
        ),
        (
            {
                "steps": ["cheap-llama", "premium-gpt4"],
                "checks": [{"type": "webhook", "url": "https://v/", "timeout_ms": 60000}],
            },
            "cascade.checks[0].timeout_ms: must be from 50 to 10000, not 60000",
        ),
        (
            {"steps": ["cheap-llama", "premium-gpt4"], "checks": [{"type": "json"}], "max_cost_usd": "0"},
            "cascade.max_cost_usd: must be above 0",
        ),
        (
            {"steps": ["cheap-llama", "premium-gpt4"], "checks": [{"type": "json"}], "max_cost_usd": 0.05},
            'cascade.max_cost_usd: must be a dollar amount as a string, such as "0.05"',
        ),
        (
            {"steps": ["cheap-llama", "premium-gpt4"], "checks": [{"type": "json"}], "max_cost_usd": "NaN"},
            "cascade.max_cost_usd: must be above 0",
        ),
        (
            {"steps": ["cheap-llama", "premium-gpt4"], "checks": [{"type": "json"}], "budget": 1},
            "cascade.budget: unknown key; expected one of steps, checks, max_cost_usd",
        ),
    ],
)
def test_a_bad_cascade_is_refused_with_its_path(cascade, expected):
    _, problems = parse({"strategy": "cascade", "cascade": cascade})

    assert any(p.startswith(f"aliases[0].routing.{expected}") for p in problems), problems


def test_the_cascade_strategy_needs_a_cascade_mapping():
    _, problems = parse({"strategy": "cascade"})

    assert problems == ["aliases[0].routing.cascade: the cascade strategy needs cascade: {steps: [...], checks: [...]}"]


def test_more_checks_than_the_bound_are_refused():
    cascade = {"steps": ["cheap-llama", "premium-gpt4"], "checks": [{"type": "json"}] * 9}

    _, problems = parse({"strategy": "cascade", "cascade": cascade})

    assert problems == ["aliases[0].routing.cascade.checks: must list at most 8 checks, not 9"]
