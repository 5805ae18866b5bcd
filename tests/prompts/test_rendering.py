"""Rendering is data substitution only: typed values, defaults, no second pass, no logic, clear params."""

import pytest

from core import prompts

MESSAGES = [
    {"role": "system", "content": "You are {{persona}}."},
    {"role": "user", "content": "Ticker {{ ticker }}, {{quarter}}, top {{n}}, live={{live}}, ctx={{ctx}}, x={{ratio}}"},
]
SPECS_IN = {
    "persona": {"type": "string", "default": "an analyst"},
    "ticker": {"type": "string", "required": True},
    "quarter": {"type": "enum", "values": ["Q1", "Q2"], "default": "Q1"},
    "n": {"type": "integer"},
    "live": {"type": "boolean", "default": False},
    "ctx": {"type": "json", "required": False},
    "ratio": {"type": "number", "default": 0.5},
}


def specs():
    return prompts.clean_variable_specs(SPECS_IN, used=prompts.variables_in_messages(MESSAGES))


def test_values_are_substituted_by_type_with_defaults():
    rendered = prompts.render(MESSAGES, specs(), {"ticker": "AAPL", "n": 3, "ctx": {"a": [1, "é"]}, "live": True})
    assert rendered[0] == {"role": "system", "content": "You are an analyst."}
    assert rendered[1]["content"] == 'Ticker AAPL, Q1, top 3, live=true, ctx={"a":[1,"é"]}, x=0.5'


def test_an_optional_variable_without_a_value_renders_empty():
    rendered = prompts.render(MESSAGES, specs(), {"ticker": "AAPL", "n": 1})
    assert "ctx=," in rendered[1]["content"]


def test_a_value_is_never_read_again_as_template():
    hostile = "{{persona}} {{__class__}} {% for x in y %} ${7*7} {{ticker.__globals__}}"
    rendered = prompts.render(MESSAGES, specs(), {"ticker": hostile, "n": 1, "persona": "{{ticker}}"})
    assert rendered[0]["content"] == "You are {{ticker}}."
    assert hostile in rendered[1]["content"]


@pytest.mark.parametrize(
    "values, param",
    [
        ({"n": 1}, "variables.ticker"),  # missing required
        ({"ticker": "A"}, "variables.n"),  # integer with no default is required
        ({"ticker": 5, "n": 1}, "variables.ticker"),
        ({"ticker": "A", "n": "3"}, "variables.n"),  # a numeric string is not an integer
        ({"ticker": "A", "n": 2.5}, "variables.n"),
        ({"ticker": "A", "n": True}, "variables.n"),  # a bool is not an integer
        ({"ticker": "A", "n": 1, "live": "yes"}, "variables.live"),
        ({"ticker": "A", "n": 1, "quarter": "Q9"}, "variables.quarter"),
        ({"ticker": "A", "n": 1, "ratio": float("nan")}, "variables.ratio"),
        ({"ticker": "A", "n": 1, "extra": 1}, "variables.extra"),  # unknown
        ({"ticker": "x" * (prompts.MAX_VALUE_CHARS + 1), "n": 1}, "variables.ticker"),
    ],
)
def test_wrong_values_are_refused_naming_the_variable(values, param):
    with pytest.raises(prompts.PromptError) as caught:
        prompts.render(MESSAGES, specs(), values)
    assert caught.value.param == param


def test_variables_must_be_an_object():
    with pytest.raises(prompts.PromptError) as caught:
        prompts.render(MESSAGES, specs(), ["AAPL"])
    assert caught.value.param == "variables"


@pytest.mark.parametrize(
    "content",
    ["{{ a.b }}", "{{a|upper}}", "{{ }}", "{{1abc}}", "{{ a() }}", "{{x}} then {{ y[0] }}", "{{" + "a" * 65 + "}}"],
)
def test_templates_with_anything_but_plain_names_are_refused(content):
    with pytest.raises(prompts.PromptError) as caught:
        prompts.clean_messages([{"role": "user", "content": content}])
    assert caught.value.param == "messages[0].content"


def test_an_escaped_brace_pair_is_a_literal():
    messages = prompts.clean_messages([{"role": "user", "content": r"JSON like \{{ key }} for {{name}}"}])
    rendered = prompts.render(messages, prompts.clean_variable_specs({}, used=["name"]), {"name": "Ann"})
    assert rendered[0]["content"] == "JSON like {{ key }} for Ann"


@pytest.mark.parametrize(
    "messages, param",
    [
        ([], "messages"),
        ("hello", "messages"),
        ([{"role": "robot", "content": "hi"}], "messages[0].role"),
        ([{"role": "user", "content": 7}], "messages[0].content"),
        ([{"role": "user", "content": "hi", "name": "x"}], "messages[0].name"),
        ([{"role": "user", "content": "x" * (prompts.MAX_MESSAGE_CHARS + 1)}], "messages[0].content"),
    ],
)
def test_malformed_messages_are_refused(messages, param):
    with pytest.raises(prompts.PromptError) as caught:
        prompts.clean_messages(messages)
    assert caught.value.param == param


@pytest.mark.parametrize(
    "spec_in, param",
    [
        ({"ghost": {"type": "string"}}, "variables.ghost"),  # not used by the text
        ({"a": {"type": "date"}}, "variables.a.type"),
        ({"a": {"type": "enum"}}, "variables.a.values"),
        ({"a": {"type": "enum", "values": ["x", "x"]}}, "variables.a.values"),
        ({"a": {"type": "string", "values": ["x"]}}, "variables.a.values"),
        ({"a": {"type": "integer", "default": "7"}}, "variables.a.default"),
        ({"a": {"type": "string", "required": "yes"}}, "variables.a.required"),
        ({"a": {"type": "string", "format": "email"}}, "variables.a.format"),
        ({"a": "string"}, "variables.a"),
    ],
)
def test_bad_variable_specs_are_refused(spec_in, param):
    with pytest.raises(prompts.PromptError) as caught:
        prompts.clean_variable_specs(spec_in, used=["a"])
    assert caught.value.param == param


def test_a_variable_without_a_spec_is_a_required_string_and_specs_round_trip():
    cleaned = prompts.clean_variable_specs({"b": {"type": "integer", "default": 2}}, used=["a", "b"])
    as_dict = prompts.specs_as_dict(cleaned)
    assert as_dict == {
        "a": {"type": "string", "required": True},
        "b": {"type": "integer", "required": False, "default": 2},
    }
    assert prompts.specs_from_dict(as_dict) == cleaned


def test_variables_are_listed_in_first_use_order_once():
    assert prompts.variables_in("{{b}} {{a}} {{ b }} \\{{c}}") == ["b", "a"]


def test_a_split_is_drawn_by_its_percentages_with_a_fixed_seed():
    import random

    rng = random.Random(7)
    draws = [prompts.pick_version({"3": 90, "4": 10}, rng=rng) for _ in range(10_000)]
    # Binomial(10,000, 0.1): sd 30, so +-150 is 5 sd; the seed makes it one fixed outcome anyway.
    assert abs(draws.count(4) - 1_000) <= 150
    assert set(draws) == {3, 4}
    assert prompts.pick_version({"5": 100}, rng=rng) == 5


def test_a_render_is_bounded_without_being_produced():
    # 100 uses of one variable, each given the longest value allowed: 10 MB if rendered.
    messages = prompts.clean_messages([{"role": "user", "content": "{{v}} " * 100}])
    specs = prompts.clean_variable_specs({}, used=["v"])
    big = "x" * prompts.MAX_VALUE_CHARS
    assert prompts.rendered_size(messages, specs, {"v": big}) == 100 * (prompts.MAX_VALUE_CHARS + 1)
    with pytest.raises(prompts.PromptError) as caught:
        prompts.render(messages, specs, {"v": big})
    assert caught.value.param == "variables"
    small = prompts.render(messages, specs, {"v": "ab"})
    assert len(small[0]["content"]) == prompts.rendered_size(messages, specs, {"v": "ab"}) == 300
