"""A cascade is chosen in the catalogue YAML, over REST and on the console's alias routing page, all through the
catalogue importer: refusals name their path, and export then import changes nothing."""

import pytest
import yaml

from routing.catalogue import export_catalogue, import_catalogue
from routing.models import ModelAlias
from tests.catalogue.documents import platform, routing_catalogue  # noqa: F401 -- a fixture
from tests.catalogue.test_routing_console import routing_url
from tests.portal.factories import UserFactory, token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("platform")]

CASCADE = {
    "steps": ["cheap-llama", "premium-gpt4"],
    "checks": [
        {"type": "not-truncated"},
        {"type": "json"},
        {"type": "regex", "pattern": "^[A-D]$"},
        {"type": "webhook", "url": "http://127.0.0.1:9/check", "pass_score": 0.7},
    ],
    "max_cost_usd": "0.05",
}


@pytest.fixture
def catalogue():
    import_catalogue(data=routing_catalogue())


def smart_routing() -> dict:
    [smart] = [a for a in export_catalogue()["aliases"] if a["name"] == "smart"]
    return smart.get("routing", {})


def test_a_cascade_in_the_yaml_exports_as_it_was_written_and_imports_back_unchanged(catalogue):
    data = routing_catalogue()
    [smart] = [a for a in data["aliases"] if a["name"] == "smart"]
    smart["routing"] = {"strategy": "cascade", "cascade": CASCADE}
    import_catalogue(data=data)

    exported = export_catalogue()
    assert smart_routing() == {"strategy": "cascade", "cascade": CASCADE}
    again = import_catalogue(data=yaml.safe_load(yaml.safe_dump(exported)))
    assert not again.has_changes
    assert export_catalogue() == exported


def test_a_verifier_on_a_refused_address_is_refused_at_import(catalogue, settings):
    settings.TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS = False
    data = routing_catalogue()
    [smart] = [a for a in data["aliases"] if a["name"] == "smart"]
    smart["routing"] = {"strategy": "cascade", "cascade": CASCADE}

    with pytest.raises(Exception) as refused:
        import_catalogue(data=data)

    assert "routing.cascade.checks[3].url: the verifier URL resolves to loopback address 127.0.0.1" in str(
        refused.value.errors
    )


def test_rest_sets_a_cascade_and_refuses_a_bad_one_naming_its_path(catalogue):
    admin = token_client(UserFactory(is_superuser=True))
    url = f"/api/v1/catalogue/aliases/{ModelAlias.objects.get(name='smart').pk}/"

    saved = admin.patch(url, {"routing": {"strategy": "cascade", "cascade": CASCADE}}, format="json")
    bad = {"strategy": "cascade", "cascade": {**CASCADE, "steps": ["cheap-llama", "nope"]}}
    refused = admin.patch(url, {"routing": bad}, format="json")

    assert saved.status_code == 200, saved.json()
    assert saved.json()["routing"]["cascade"] == CASCADE
    assert refused.status_code == 400
    assert "routing.cascade.steps[1]: is not one of this alias's deployments" in str(refused.json())
    assert smart_routing()["cascade"] == CASCADE


def test_the_console_saves_a_cascade_from_its_yaml_and_shows_a_bad_one_beside_the_field(catalogue, client):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    form = {"strategy": "cascade", "cascade": yaml.safe_dump(CASCADE)}

    saved = client.post(routing_url("smart"), form)
    assert saved.status_code == 302
    assert (smart_routing()["strategy"], smart_routing()["cascade"]) == ("cascade", CASCADE)
    page = client.get(routing_url("smart"))
    assert page.context["form"]["cascade"].value().startswith("steps:\n- cheap-llama\n- premium-gpt4\n")

    bad = client.post(
        routing_url("smart"), {"strategy": "cascade", "cascade": "steps: [cheap-llama, nope]\nchecks: [{type: json}]"}
    )
    assert bad.status_code == 200
    assert bad.context["form"].errors["cascade"] == ["routing.cascade.steps[1]: is not one of this alias's deployments"]
    unparsable = client.post(routing_url("smart"), {"strategy": "cascade", "cascade": "steps: [oops"})
    assert unparsable.context["form"].errors["cascade"][0].startswith("Not valid YAML")
    assert smart_routing()["cascade"] == CASCADE
