"""Hostile and huge bodies sent to every prompt endpoint answer JSON 4xx naming what is wrong, never a 500, and
write nothing."""

import json

import pytest
from django.conf import settings

from core import prompts as rendering
from portal.models import AuditLogEntry
from portal.prompts import services
from portal.prompts.models import PromptPublication, PromptTemplate, PromptVersion
from tests.factories import ModelAliasFactory, TeamFactory
from tests.portal.factories import token_client
from tests.prompts.factories import make_prompt, team_owner

pytestmark = pytest.mark.django_db

DEEP_ARRAY = b"[" * 50_000 + b"]" * 50_000


@pytest.fixture
def world():
    team = TeamFactory()
    user = team_owner(team)
    ModelAliasFactory(name="mini")
    template = make_prompt(team=team, owner=user, alias="mini")
    services.create_version(template, actor=user)
    return {"client": token_client(user), "team": team, "template": template}


def _valid_create(team) -> dict:
    return {
        "slug": "new",
        "name": "New",
        "team": team.pk,
        "alias": "mini",
        "messages": [{"role": "user", "content": "hi"}],
    }


def send(client, method: str, path: str, body):
    # json.dumps escapes a lone surrogate as \ud800, which the test client's own encoder cannot send.
    return getattr(client, method)(path, json.dumps(body), content_type="application/json")


def _writes() -> tuple:
    return (
        PromptTemplate.objects.count(),
        PromptVersion.objects.count(),
        PromptPublication.objects.count(),
        AuditLogEntry.objects.count(),
    )


ENDPOINTS = [
    ("post", lambda w: "/api/v1/prompts/"),
    ("patch", lambda w: f"/api/v1/prompts/{w['template'].pk}/"),
    ("post", lambda w: f"/api/v1/prompts/{w['template'].pk}/versions/"),
    ("post", lambda w: f"/api/v1/prompts/{w['template'].pk}/publish"),
    ("post", lambda w: f"/api/v1/prompts/{w['template'].pk}/rollback"),
    ("post", lambda w: f"/api/v1/prompts/{w['template'].pk}/render"),
]
RAW_BODIES = {
    "malformed": b'{"slug": ',
    "an array": b"[1, 2]",
    "a string": b'"prompt"',
    "null": b"null",
    "nested past the recursion limit": DEEP_ARRAY,
    "NaN": b'{"version": NaN}',
    "a 5000-digit number": b'{"version": 1' + b"0" * 5000 + b"}",
    "larger than the API reads": b'{"name": "' + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1) + b'"}',
    "not UTF-8": b'{"name": "\xff\xfe"}',
}


@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {i}" for i, (m, _) in enumerate(ENDPOINTS)])
@pytest.mark.parametrize("name", RAW_BODIES)
def test_an_unreadable_body_answers_json_4xx_and_writes_nothing(world, method, path, name):
    before = _writes()

    response = getattr(world["client"], method)(path(world), RAW_BODIES[name], content_type="application/json")

    assert response.status_code in (400, 413), response.content[:300]
    assert response["content-type"] == "application/json"
    assert response.json()["code"] in ("parse_error", "invalid", "body_too_large")
    assert _writes() == before


# Fields of a create, each hostile, with the param the answer must name.
HOSTILE_FIELDS = [
    ({"slug": "a" * 101}, "slug"),
    ({"slug": "ticker summary"}, "slug"),
    ({"slug": "a\x00"}, "slug"),
    ({"slug": ["a"]}, "slug"),
    ({"name": "n" * 201}, "name"),
    ({"name": "\ud800"}, "name"),
    ({"name": None}, "name"),
    ({"team": "1"}, "team"),
    ({"team": 2**70}, "team"),
    ({"team": True}, "team"),
    ({"team": -1}, "team"),
    ({"alias": "nope"}, "alias"),
    ({"alias": "m" * 10_000}, "alias"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "user", "content": "hi"}] * (rendering.MAX_MESSAGES + 1)}, "messages"),
    ({"messages": [{"role": "root", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "x" * (rendering.MAX_MESSAGE_CHARS + 1)}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "a\x00b"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "{{ticker.__class__}}"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "{% for x in y %}{{"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "hi", "name": "x"}]}, "messages[0].name"),
    ({"messages": [{"role": "user", "content": "{{t}}"}], "variables": {"t": {"type": "code"}}}, "variables.t.type"),
    ({"messages": [{"role": "user", "content": "{{t}}"}], "variables": {"x": {}}}, "variables.x"),
    (
        {"messages": [{"role": "user", "content": "{{t}}"}], "variables": {"t": {"type": "integer", "default": "1"}}},
        "variables.t.default",
    ),
    ({"messages": [{"role": "user", "content": "{{t}}"}], "variables": {"t": {"type": "enum"}}}, "variables.t.values"),
    ({"messages": [{"role": "user", "content": "{{t}}"}], "variables": {"t": {"\x00": 1}}}, "variables.t"),
    ({"parameters": {"temperature": "hot"}}, "parameters.temperature"),
    ({"parameters": {"api_key": "sk"}}, "parameters.api_key"),
    ({"parameters": {"tools": [{"x": "y" * 70_000}]}}, "parameters"),
    ({"locked_parameters": ["nope"]}, "locked_parameters"),
    ({"output_schema": {"type": "wat"}}, "output_schema.type"),
    ({"output_schema": json.loads("[" * 40 + "]" * 40)}, "output_schema"),
    ({"description": "d" * 5001}, "description"),
    ({"is_shared": "yes"}, "is_shared"),
    ({"is_private": 1}, "is_private"),
    ({"products": "all"}, "products"),
    ({"products": [1.5]}, "products[0]"),
    ({"products": list(range(1, 100))}, "products"),
    ({"owner": "me"}, "owner"),
]


@pytest.mark.parametrize(("fields", "param"), HOSTILE_FIELDS, ids=[p for _, p in HOSTILE_FIELDS])
def test_a_hostile_field_of_a_create_is_refused_by_name(world, fields, param):
    before = _writes()
    body = {**_valid_create(world["team"]), **fields}

    response = send(world["client"], "post", "/api/v1/prompts/", body)

    if param.startswith("products"):  # only tenant admins bundle: the team's owner is refused before they are read
        assert response.status_code == 403, response.content[:300]
    else:
        assert response.status_code == 400, response.content[:300]
        assert response.json()["param"].startswith(param), response.json()
        assert len(response.content) < 2000
    assert _writes() == before


# A change has no slug or team (PATCH refuses them as unknown fields).
HOSTILE_CHANGES = [(fields, param) for fields, param in HOSTILE_FIELDS if param not in ("slug", "team")]


@pytest.mark.parametrize(("fields", "param"), HOSTILE_CHANGES, ids=[p for _, p in HOSTILE_CHANGES])
def test_a_hostile_change_of_the_draft_is_refused_by_name(world, fields, param):
    before = _writes()

    response = send(world["client"], "patch", f"/api/v1/prompts/{world['template'].pk}", fields)

    if param.startswith("products"):
        assert response.status_code == 403, response.content[:300]
    else:
        assert response.status_code == 400, response.content[:300]
        assert response.json()["param"].startswith(param), response.json()
    assert _writes() == before


def test_a_render_whose_output_would_be_huge_is_refused(world):
    owner = world["template"].created_by
    template = make_prompt(
        team=world["team"],
        owner=owner,
        alias="mini",
        slug="amplifier",
        messages=[{"role": "user", "content": "{{v}}" * 20_000}],
        variables={},
    )

    response = world["client"].post(
        f"/api/v1/prompts/{template.pk}/render", {"variables": {"v": "x" * 100_000}}, format="json"
    )

    assert response.status_code == 400 and response.json()["param"] == "variables"


@pytest.mark.parametrize(
    "variables",
    [
        {"ticker": "\ud800"},
        {"ticker": "a\x00"},
        {"ticker": {"$gt": ""}},
        {"ticker": "x" * (rendering.MAX_VALUE_CHARS + 1)},
    ],
)
def test_a_hostile_value_to_render_is_refused_by_name(world, variables):
    response = send(world["client"], "post", f"/api/v1/prompts/{world['template'].pk}/render", {"variables": variables})

    assert response.status_code == 400 and response.json()["param"] == "variables.ticker", response.content[:300]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/prompts/99999999999999999999999/",
        "/api/v1/prompts/0/render",
        "/api/v1/prompts/{pk}/versions/99999999999999999999999",
        "/api/v1/prompts/{pk}/versions/0/",
        "/api/v1/prompts/?team=99999999999999999999999",
        "/api/v1/prompts/?slug=" + "s" * 101,
        "/api/v1/prompts/?slug=a%00b",
        "/api/v1/prompts/?page=0",
    ],
)
def test_ids_and_filters_out_of_range_answer_json_404_or_400(world, path):
    response = world["client"].get(path.format(pk=world["template"].pk))

    assert response.status_code in (400, 404) and response["content-type"] == "application/json"
