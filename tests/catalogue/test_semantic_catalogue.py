"""Semantic routing is chosen in the catalogue YAML, over REST and on the console's alias routing page, all through
the catalogue importer: a route's target is one of the alias's deployments or another alias (an unknown name or
the alias itself is refused with its path), export then import changes nothing, and saving the console form with
other changes never drops the routes."""

import pytest
import yaml

from routing.catalogue import export_catalogue, import_catalogue
from routing.models import ModelAlias
from tests.catalogue.console_forms import part_two_as_rendered
from tests.catalogue.documents import platform, routing_catalogue  # noqa: F401 -- a fixture
from tests.catalogue.test_routing_console import routing_url
from tests.portal.factories import UserFactory, token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("platform")]

ROUTES = [
    {"name": "code", "target": "mid-mixtral", "examples": ["Write a Python function that reverses a list"]},
    {"name": "chit-chat", "target": "cheap-llama", "examples": ["Hi!", "Thanks, that helps"]},
    {"name": "hard", "target": "claude-sonnet", "examples": ["Prove that there are infinitely many primes"]},
]
SEMANTIC = {"strategy": "semantic", "routes": ROUTES, "threshold": 0.55, "default": "premium-gpt4"}


@pytest.fixture
def catalogue():
    import_catalogue(data=routing_catalogue())


def with_smart_routing(routing: dict) -> dict:
    data = routing_catalogue()
    [smart] = [a for a in data["aliases"] if a["name"] == "smart"]
    smart["routing"] = routing
    return data


def smart_routing() -> dict:
    [smart] = [a for a in export_catalogue()["aliases"] if a["name"] == "smart"]
    return smart.get("routing", {})


def test_semantic_routes_in_the_yaml_export_as_written_and_import_back_unchanged(catalogue):
    import_catalogue(data=with_smart_routing(SEMANTIC))

    exported = export_catalogue()
    assert smart_routing() == SEMANTIC
    again = import_catalogue(data=yaml.safe_load(yaml.safe_dump(exported)))
    assert not again.has_changes
    assert export_catalogue() == exported


@pytest.mark.parametrize(
    ("routing", "problem"),
    [
        (
            {**SEMANTIC, "routes": [{**ROUTES[0], "target": "nowhere"}]},
            "aliases[1].routing.routes[0].target: unknown alias 'nowhere'",
        ),
        (
            {**SEMANTIC, "default": "smart"},
            "aliases[1].routing.default: an alias cannot route to itself: name one of its deployments",
        ),
        ({**SEMANTIC, "threshold": 2}, "aliases[1].routing.threshold: must be from 0 to 1, not 2"),
    ],
)
def test_a_bad_target_or_bound_is_refused_at_import_naming_its_path(catalogue, routing, problem):
    with pytest.raises(Exception) as refused:
        import_catalogue(data=with_smart_routing(routing))
    assert problem in refused.value.errors
    assert smart_routing()["strategy"] == "cheapest"  # nothing was applied


def test_rest_sets_semantic_routes_and_refuses_a_bad_one_naming_its_path(catalogue):
    admin = token_client(UserFactory(is_superuser=True))
    url = f"/api/v1/catalogue/aliases/{ModelAlias.objects.get(name='smart').pk}/"

    saved = admin.patch(url, {"routing": SEMANTIC}, format="json")
    refused = admin.patch(url, {"routing": {**SEMANTIC, "routes": [{**ROUTES[0], "examples": []}]}}, format="json")

    assert saved.status_code == 200, saved.json()
    assert saved.json()["routing"] == SEMANTIC
    assert refused.status_code == 400
    assert "routing.routes[0].examples: must be a list of 1 to 50 example prompts" in str(refused.json())
    assert smart_routing() == SEMANTIC


def test_the_console_edits_routes_as_yaml_and_never_drops_them_when_saving_other_fields(catalogue, client):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    kept = {key: smart_routing()[key] for key in ("experiment", "bandit")}  # shown as stored, posted back
    form = {
        "strategy": "semantic",
        "routes": yaml.safe_dump(ROUTES),
        "threshold": "0.55",
        "semantic_default": "premium-gpt4",
        **part_two_as_rendered(client, routing_url("smart")),
    }
    saved = client.post(routing_url("smart"), form)
    assert saved.status_code == 302
    assert smart_routing() == {**SEMANTIC, **kept}

    # The page shows what is stored; posting it back with one other change keeps the routes as they were.
    page = client.get(routing_url("smart"))
    shown = page.context["form"]
    assert yaml.safe_load(shown["routes"].value()) == ROUTES
    assert (shown["threshold"].value(), shown["semantic_default"].value()) == (0.55, "premium-gpt4")
    resent = {name: shown[name].value() for name in ("strategy", "routes", "threshold", "semantic_default")}
    resent.update(part_two_as_rendered(client, routing_url("smart")))
    assert client.post(routing_url("smart"), {**resent, "retry_max_attempts": "2"}).status_code == 302
    assert smart_routing() == {**SEMANTIC, **kept, "retry": {"max_attempts": 2}}

    bad = client.post(routing_url("smart"), {**form, "routes": "- {name: code, target: nope, examples: [x]}"})
    assert bad.status_code == 200
    assert bad.context["form"].errors["routes"] == ["routing.routes[0].target: unknown alias 'nope'"]
    unparsable = client.post(routing_url("smart"), {**form, "routes": "- {name: [oops"})
    assert unparsable.context["form"].errors["routes"][0].startswith("Not valid YAML")
    other_strategy = client.post(routing_url("smart"), {**form, "strategy": "cheapest"})
    assert other_strategy.context["form"].errors["routes"] == ["routing.routes: is for the semantic strategy only"]
    assert smart_routing() == {**SEMANTIC, **kept, "retry": {"max_attempts": 2}}
