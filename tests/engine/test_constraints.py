"""What a request needs (needs_for) and which deployments can give it (eligible): one Skip per excluded deployment,
with the first reason that applies."""

from decimal import Decimal

import pytest

from core.bounds import MAX_INTEGER
from core.values import ModelPrice, Skip, Target
from routing.engine.constraints import ROUTING_TEXT_CHARS, Needs, eligible, needs_for


def target(deployment: str, **facts) -> Target:
    return Target(
        deployment=deployment,
        provider="test",
        kind="openai-compatible",
        base_url="http://127.0.0.1:9/v1",
        model=deployment,
        price=facts.pop("price", ModelPrice(Decimal("1"), Decimal("2"))),
        **facts,
    )


def needs_of(body: dict, *, endpoint: str = "chat.completions", **given) -> Needs:
    values = {"prompt_tokens": 10, "principal_regions": None, "principal_tags": frozenset(), "min_quality": None}
    return needs_for(body, endpoint=endpoint, **(values | given))


# --- needs_for ---------------------------------------------------------------------------------------------------


def test_a_plain_chat_needs_no_capability():
    assert needs_of({"messages": [{"role": "user", "content": "hi"}]}).capabilities == frozenset()


@pytest.mark.parametrize(
    ("body", "capability"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"functions": [{"name": "f"}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "json"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "json"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "vision"),
        ({"messages": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "vision"),
    ],
)
def test_a_request_needs_the_capability_its_body_uses(body, capability):
    assert needs_of(body).capabilities == {capability}


def test_an_embeddings_call_needs_embeddings():
    assert needs_of({"input": "hi"}, endpoint="embeddings").capabilities == {"embeddings"}


def test_the_routing_text_is_the_last_user_message_cut_from_its_end():
    body = {
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": [{"type": "text", "text": "x" * 5000}, {"type": "text", "text": "the end?"}]},
            {"role": "tool", "content": "not the user's"},
        ]
    }
    text = needs_of(body).routing_text
    assert len(text) == ROUTING_TEXT_CHARS
    assert text.endswith("x\nthe end?")


@pytest.mark.parametrize("messages", [None, "hi", [], [{"role": "user", "content": 7}], [{"role": "system"}], [3]])
def test_a_body_of_an_unexpected_shape_gives_no_routing_text(messages):
    assert needs_of({"messages": messages}).routing_text == ""


def test_an_image_in_a_later_message_among_text_parts_still_needs_vision():
    body = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "what is this"}, {"type": "image_url"}]},
        ]
    }
    assert needs_of(body).capabilities == {"vision"}


@pytest.mark.parametrize(
    "body",
    [
        {"tools": []},
        {"functions": []},
        {"tools": None},
        {"response_format": {"type": "text"}},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "image_url"}]}]},
    ],
)
def test_empty_or_plain_settings_need_nothing(body):
    assert needs_of(body).capabilities == frozenset()


@pytest.mark.parametrize(
    "body",
    [
        {"messages": "image_url"},
        {"messages": ["hi", None, 3, ["image_url"]]},
        {"messages": [{"content": "image_url"}, {"content": [None, "image_url", 3, {"type": ["image_url"]}]}]},
        {"messages": [{"content": {"type": "image_url"}}]},
        {"tools": "yes", "functions": {"name": "f"}},
        {"response_format": "json_object"},
        {"response_format": {"type": ["json_object"]}},
        {"max_tokens": "100", "max_completion_tokens": [5]},
        {"max_tokens": 1e9, "stream": "true"},
    ],
)
def test_odd_bodies_are_ignored_never_raised_on(body):
    needs = needs_of(body)
    assert needs.capabilities == frozenset()
    assert needs.output_tokens == 0
    assert needs.stream is False


def test_a_body_that_is_not_a_mapping_needs_nothing():
    assert needs_of(["not", "a", "body"]) == needs_of({})


def test_the_requested_output_prefers_max_completion_tokens():
    assert needs_of({"max_tokens": 100, "max_completion_tokens": 300}).output_tokens == 300
    assert needs_of({"max_tokens": 100}).output_tokens == 100


@pytest.mark.parametrize("value", [0, -5, True, None, 2.5])
def test_an_output_that_is_not_a_positive_int_is_unknown(value):
    assert needs_of({"max_completion_tokens": value}).output_tokens == 0


def test_a_non_positive_max_completion_tokens_falls_back_to_max_tokens():
    assert needs_of({"max_completion_tokens": 0, "max_tokens": 64}).output_tokens == 64


def test_huge_token_counts_are_bounded():
    needs = needs_of({"max_tokens": 10**40}, prompt_tokens=10**30)
    assert needs.output_tokens == MAX_INTEGER
    assert needs.prompt_tokens == MAX_INTEGER


def test_the_principal_and_policy_facts_pass_through():
    needs = needs_of(
        {"stream": True},
        prompt_tokens=42,
        principal_regions=frozenset({"eu"}),
        principal_tags=frozenset({"pii-safe"}),
        min_quality=0.7,
    )
    assert needs == Needs(
        prompt_tokens=42,
        allowed_regions=frozenset({"eu"}),
        required_tags=frozenset({"pii-safe"}),
        min_quality=0.7,
        stream=True,
    )


# --- eligible: each reason ---------------------------------------------------------------------------------------


def only_skip(candidate: Target, needs: Needs, **checks) -> Skip:
    kept, skipped = eligible([candidate], needs, **checks)
    assert kept == []
    assert len(skipped) == 1
    return skipped[0]


def test_a_deployment_lacking_a_needed_capability_is_skipped():
    skip = only_skip(target("a", capabilities=frozenset({"chat", "json"})), Needs(capabilities=frozenset({"tools"})))
    assert skip == Skip("a", "capability", "lacks tools")


def test_the_detail_names_every_missing_capability():
    needs = Needs(capabilities=frozenset({"tools", "vision", "json"}))
    skip = only_skip(target("a", capabilities=frozenset({"chat", "json"})), needs)
    assert skip.detail == "lacks tools, vision"


def test_a_deployment_that_states_no_capabilities_is_not_skipped_for_them():
    needs = Needs(capabilities=frozenset({"tools", "vision", "json", "embeddings"}))
    kept, skipped = eligible([target("a")], needs)
    assert [t.deployment for t in kept] == ["a"]
    assert skipped == []


def test_a_chat_deployment_need_not_list_chat():
    kept, _ = eligible([target("a", capabilities=frozenset({"tools"}))], Needs(capabilities=frozenset({"tools"})))
    assert [t.deployment for t in kept] == ["a"]


def test_a_prompt_and_output_beyond_the_context_window_is_skipped():
    skip = only_skip(target("a", context_window=8192), Needs(prompt_tokens=8500, output_tokens=500))
    assert skip == Skip("a", "context", "needs 9,000 tokens, has 8,192")


def test_a_request_that_just_fits_the_context_window_is_kept():
    kept, _ = eligible([target("a", context_window=8192)], Needs(prompt_tokens=8000, output_tokens=192))
    assert len(kept) == 1


def test_an_unknown_context_window_is_not_checked():
    kept, _ = eligible([target("a", context_window=None)], Needs(prompt_tokens=10**9))
    assert len(kept) == 1


def test_a_deployment_outside_the_allowed_regions_is_skipped():
    skip = only_skip(target("a", region="us"), Needs(allowed_regions=frozenset({"eu"})))
    assert skip == Skip("a", "region", "region us not in eu")


def test_an_unknown_region_is_outside_every_list():
    skip = only_skip(target("a", region=""), Needs(allowed_regions=frozenset({"eu", "uk"})))
    assert skip == Skip("a", "region", "region unknown not in eu, uk")
    assert only_skip(target("b", region=""), Needs(allowed_regions=frozenset({""}))).reason == "region"


def test_an_empty_region_list_allows_no_region():
    skip = only_skip(target("a", region="eu"), Needs(allowed_regions=frozenset()))
    assert skip.reason == "region"


def test_no_region_list_allows_any_region_even_unknown():
    kept, _ = eligible([target("a", region=""), target("b", region="us")], Needs(allowed_regions=None))
    assert len(kept) == 2


def test_a_deployment_lacking_a_required_tag_is_skipped():
    skip = only_skip(target("a", tags=frozenset({"fast"})), Needs(required_tags=frozenset({"fast", "pii-safe"})))
    assert skip == Skip("a", "tag", "lacks tag pii-safe")


def test_tags_beyond_the_required_ones_do_not_matter():
    needs = Needs(required_tags=frozenset({"pii-safe"}))
    kept, _ = eligible([target("a", tags=frozenset({"pii-safe", "fast", "cheap"}))], needs)
    assert len(kept) == 1


def test_a_deployment_below_the_quality_floor_is_skipped():
    skip = only_skip(target("a", quality=0.6), Needs(min_quality=0.7))
    assert skip == Skip("a", "quality", "quality 0.6 below 0.7")


def test_a_deployment_without_a_quality_score_fails_any_floor():
    skip = only_skip(target("a", quality=None), Needs(min_quality=0.0))
    assert skip == Skip("a", "quality", "quality unknown, needs 0")


def test_a_deployment_at_the_quality_floor_is_kept_and_no_floor_keeps_unscored_ones():
    kept, _ = eligible([target("a", quality=0.7)], Needs(min_quality=0.7))
    assert len(kept) == 1
    kept, _ = eligible([target("b", quality=None)], Needs(min_quality=None))
    assert len(kept) == 1


@pytest.mark.parametrize(("answer", "detail"), [("rpm-limit", "at its RPM quota"), ("tpm-limit", "at its TPM quota")])
def test_a_deployment_at_its_quota_is_skipped_with_the_quota_named(answer, detail):
    skip = only_skip(target("a"), Needs(), over_quota=lambda t: answer)
    assert skip == Skip("a", answer, detail)


def test_a_quota_answer_outside_the_contract_is_a_bug_said_loudly():
    with pytest.raises(ValueError, match="rpm-limit"):
        eligible([target("a")], Needs(), over_quota=lambda t: "rate-limited")


def test_a_deployment_with_an_open_breaker_is_skipped():
    skip = only_skip(target("a"), Needs(), is_open=lambda deployment: deployment == "a")
    assert skip == Skip("a", "breaker-open", "breaker open")


# --- eligible: together ------------------------------------------------------------------------------------------


def test_the_first_reason_that_applies_is_the_one_given():
    # Each deployment fails every check from its own onwards: the earliest must be named.
    fails_all = {
        "capabilities": frozenset({"chat"}),
        "context_window": 10,
        "region": "us",
        "tags": frozenset(),
        "quality": 0.1,
    }
    ladder = [target("capability", **fails_all)]
    ladder.append(target("context", **(fails_all | {"capabilities": frozenset()})))
    ladder.append(target("region", **(fails_all | {"capabilities": frozenset(), "context_window": None})))
    passes = {"capabilities": frozenset(), "context_window": None, "region": "eu"}
    ladder.append(target("tag", **(fails_all | passes)))
    ladder.append(target("quality", **(fails_all | passes | {"tags": frozenset({"pii-safe"})})))
    fine = fails_all | passes | {"tags": frozenset({"pii-safe"}), "quality": 0.9}
    ladder.append(target("rpm-limit", **fine))
    ladder.append(target("breaker-open", **fine))
    needs = Needs(
        capabilities=frozenset({"tools"}),
        prompt_tokens=100,
        allowed_regions=frozenset({"eu"}),
        required_tags=frozenset({"pii-safe"}),
        min_quality=0.5,
    )

    kept, skipped = eligible(
        ladder,
        needs,
        over_quota=lambda t: "rpm-limit" if t.deployment == "rpm-limit" else None,
        is_open=lambda deployment: True,
    )

    assert kept == []
    assert [(skip.deployment, skip.reason) for skip in skipped] == [(t.deployment, t.deployment) for t in ladder]


def test_quota_comes_before_the_breaker():
    skip = only_skip(target("a"), Needs(), over_quota=lambda t: "tpm-limit", is_open=lambda deployment: True)
    assert skip.reason == "tpm-limit"


def test_quota_and_breaker_are_not_asked_about_deployments_already_skipped():
    # A half-open breaker hands out its probe when asked: it must be asked only of a deployment that can be tried.
    asked = []

    def is_open(deployment):
        asked.append(("breaker", deployment))
        return False

    def over_quota(candidate):
        asked.append(("quota", candidate.deployment))
        return None

    targets = [target("small", context_window=10), target("big", context_window=1000)]
    eligible(targets, Needs(prompt_tokens=100), is_open=is_open, over_quota=over_quota)

    assert asked == [("quota", "big"), ("breaker", "big")]


def test_eligible_deployments_keep_their_order_and_each_skip_is_given_once():
    targets = [target(name, region=region) for name, region in zip("abcde", ["eu", "us", "eu", "", "uk"], strict=True)]
    needs = Needs(allowed_regions=frozenset({"eu", "uk"}))

    kept, skipped = eligible(targets, needs)

    assert [t.deployment for t in kept] == ["a", "c", "e"]
    assert [skip.deployment for skip in skipped] == ["b", "d"]
