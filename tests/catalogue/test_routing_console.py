"""The console's catalogue shows how each alias routes and each deployment's routing facts; platform admins
change them there, through the catalogue importer (so refusals name their path, beside the field), and every
save is a catalogue change on the feed."""

import pytest
from django.urls import reverse

from portal.models import AuditLogEntry
from routing.catalogue import import_catalogue
from routing.models import ChangeEvent, Deployment, ModelAlias
from tests.catalogue.console_forms import as_rendered
from tests.catalogue.documents import platform, routing_catalogue  # noqa: F401 -- a fixture
from tests.portal.factories import UserFactory

RETRY = ("max_attempts", "base_delay_ms", "max_delay_ms", "deadline_ms")
BREAKER = ("consecutive_failures", "error_rate", "min_calls", "window_s", "cooldown_s", "half_open_probes")

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("platform")]

CATALOGUE = "/console/catalogue/"


@pytest.fixture
def admin(client):
    import_catalogue(data=routing_catalogue())
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    return client


def routing_url(alias: str) -> str:
    return reverse("console:alias-routing", args=[ModelAlias.objects.get(name=alias).pk])


def deployment_url(name: str) -> str:
    return reverse("console:deployment-routing", args=[Deployment.objects.get(name=name).pk])


def routing_form(**fields) -> dict:
    """What the routing form posts when only `fields` are filled in."""
    return {"strategy": "priority", **fields}


def test_the_catalogue_shows_each_aliases_strategy_and_fallbacks_and_each_deployments_facts(admin):
    page = admin.get(CATALOGUE).content.decode()

    smart = page[page.index('data-testid="routing-smart"') :][:600]
    assert "cheapest" in smart and "quality ≥ 0.7" in smart and "<code>claude-sonnet</code>" in smart
    assert ">priority<" in page[page.index('data-testid="routing-claude-sonnet"') :][:200]
    llama = page[page.index('data-testid="deployment-cheap-llama"') :][:3000]
    assert "quality 0.72" in llama and "<strong>eu</strong>" in llama
    assert '<span class="tag">zero-retention</span>' in llama
    assert "600 req/min · 200,000 tokens/min" in llama
    assert "breaker state" not in page.lower()


def test_members_see_routing_but_no_way_to_change_it(client):
    import_catalogue(data=routing_catalogue())
    member = UserFactory()
    client.force_login(member)

    page = client.get(CATALOGUE).content.decode()

    assert "cheapest" in page and 'data-testid="edit-routing-smart"' not in page
    assert 'data-testid="edit-deployment-cheap-llama"' not in page
    assert client.get(routing_url("smart")).status_code == 403
    assert client.post(routing_url("smart"), routing_form()).status_code == 403
    assert client.post(deployment_url("cheap-llama"), {"quality": "0.1"}).status_code == 403
    assert ModelAlias.objects.get(name="smart").routing["strategy"] == "cheapest"


def test_the_routing_form_starts_from_what_is_stored(admin):
    assert 'data-testid="edit-routing-smart"' in admin.get(CATALOGUE).content.decode()

    form = admin.get(routing_url("smart")).context["form"]

    assert form["strategy"].value() == "cheapest"
    assert (form["min_quality"].value(), form["fallbacks"].value()) == (0.7, "claude-sonnet")
    assert (form["weight_cheap-llama"].value(), form["weight_mid-mixtral"].value()) == (3, None)
    assert (form["retry_max_attempts"].value(), form["breaker_error_rate"].value()) == (3, 0.25)


def test_an_admin_sets_cheapest_with_a_quality_floor_and_it_is_a_catalogue_change(admin):
    alias = ModelAlias.objects.get(name="claude-sonnet")
    before = ChangeEvent.objects.filter(kind="catalogue").count()

    response = admin.post(routing_url("claude-sonnet"), routing_form(strategy="cheapest", min_quality="0.7"))

    assert response.status_code == 302 and response["location"] == f"{CATALOGUE}#aliases"
    alias.refresh_from_db()
    assert alias.routing == {"strategy": "cheapest", "min_quality": 0.7}
    assert ChangeEvent.objects.filter(kind="catalogue").count() > before
    assert AuditLogEntry.objects.get(action="modelalias.updated").details["routing"] == alias.routing


def test_weights_fallbacks_retry_and_breaker_are_saved_and_the_rest_is_kept(admin):
    url = routing_url("smart")
    retry_and_breaker = {
        f"{section}_{key}": "" for section, keys in (("retry", RETRY), ("breaker", BREAKER)) for key in keys
    }
    response = admin.post(
        url,
        as_rendered(
            admin,
            url,
            strategy="weighted",
            min_quality="",
            **{"weight_cheap-llama": "2", "weight_premium-gpt4": "1.5"},
            fallbacks="claude-sonnet",
            **{
                **retry_and_breaker,
                "retry_max_attempts": "4",
                "retry_deadline_ms": "10000",
                "breaker_consecutive_failures": "2",
                "breaker_cooldown_s": "5",
            },
        ),
    )

    assert response.status_code == 302
    assert ModelAlias.objects.get(name="smart").routing == {
        "strategy": "weighted",
        "weights": {"cheap-llama": 2, "premium-gpt4": 1.5},
        "fallbacks": ["claude-sonnet"],
        "retry": {"max_attempts": 4, "deadline_ms": 10000},
        "breaker": {"consecutive_failures": 2, "cooldown_s": 5},
        # Part two's keys, shown in the form as stored and saved back untouched.
        "experiment": routing_catalogue()["aliases"][1]["routing"]["experiment"],
        "bandit": routing_catalogue()["aliases"][1]["routing"]["bandit"],
    }


def test_a_refused_routing_is_shown_beside_its_field_with_its_path_and_nothing_changes(admin):
    before = ModelAlias.objects.get(name="smart").routing

    response = admin.post(
        routing_url("smart"),
        routing_form(
            strategy="cheapest", min_quality="1.5", retry_max_attempts="0", fallbacks="claude-sonnet, nowhere"
        ),
    )

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["retry_max_attempts"] == ["routing.retry.max_attempts: must be from 1 to 20, not 0"]
    assert errors["min_quality"] == ["routing.min_quality: must be from 0 to 1, not 1.5"]
    assert errors["fallbacks"] == ["routing.fallbacks[1]: unknown alias 'nowhere'"]
    assert "routing.retry.max_attempts: must be from 1 to 20, not 0" in response.content.decode()
    assert ModelAlias.objects.get(name="smart").routing == before


def test_a_problem_the_form_has_no_field_for_is_shown_above_it(admin):
    response = admin.post(routing_url("smart"), routing_form(strategy="weighted", **{"weight_cheap-llama": "0"}))

    assert response.context["form"].non_field_errors() == ["routing.weights: at least one weight must be above 0"]


def test_an_admin_changes_a_deployments_routing_facts(admin):
    response = admin.post(
        deployment_url("mid-mixtral"),
        {"quality": "0.9", "region": "eu", "tags": "soc2, zero-retention", "rpm_limit": "60", "tpm_limit": ""},
    )

    assert response.status_code == 302 and response["location"] == f"{CATALOGUE}#deployments"
    mixtral = Deployment.objects.get(name="mid-mixtral")
    assert (mixtral.quality, mixtral.region, mixtral.tags) == (0.9, "eu", ["soc2", "zero-retention"])
    assert (mixtral.rpm_limit, mixtral.tpm_limit, mixtral.model) == (60, None, "mixtral-8x7b")


def test_a_refused_routing_fact_is_shown_beside_its_field_with_its_path(admin):
    response = admin.post(
        deployment_url("cheap-llama"), {"quality": "2", "region": "EU", "tags": "ok, Not-OK", "rpm_limit": "0"}
    )

    errors = response.context["form"].errors
    assert errors["quality"] == ["quality: must be from 0 to 1, not 2.0"]
    assert errors["region"] == ["region: must contain only lowercase letters, digits, hyphens and underscores"]
    assert errors["tags"] == ["tags[1]: must contain only lowercase letters, digits, hyphens and underscores"]
    assert errors["rpm_limit"] == ["rpm_limit: must be between 1 and 2147483647"]
    assert Deployment.objects.get(name="cheap-llama").quality == 0.72


def test_the_deployment_form_starts_from_what_is_stored(admin):
    form = admin.get(deployment_url("premium-gpt4")).context["form"]

    assert (form["quality"].value(), form["tags"].value(), form["tpm_limit"].value()) == (
        0.95,
        "zero-retention, soc2",
        2000000,
    )
