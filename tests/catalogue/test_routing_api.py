"""/api/v1/catalogue/ reads and changes deployments' routing facts and aliases' `routing:`, through the catalogue
importer: a bad value answers 400 naming where it is wrong, never 500, and changes nothing."""

import pytest

from portal.models import AuditLogEntry
from routing.catalogue import import_catalogue
from routing.models import ChangeEvent, Deployment, ModelAlias
from tests.catalogue.documents import platform, routing_catalogue  # noqa: F401 -- a fixture
from tests.portal.factories import UserFactory, token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("platform")]

DEPLOYMENTS, ALIASES = "/api/v1/catalogue/deployments/", "/api/v1/catalogue/aliases/"


@pytest.fixture
def admin():
    import_catalogue(data=routing_catalogue())
    return token_client(UserFactory(is_superuser=True))


def deployment_url(name: str) -> str:
    return f"{DEPLOYMENTS}{Deployment.objects.get(name=name).pk}/"


def alias_url(name: str) -> str:
    return f"{ALIASES}{ModelAlias.objects.get(name=name).pk}/"


def test_everyone_signed_in_reads_the_routing_facts_and_routing(admin):
    reader = token_client(UserFactory())

    llama = reader.get(deployment_url("cheap-llama")).json()
    smart = reader.get(alias_url("smart")).json()
    sonnet = reader.get(alias_url("claude-sonnet")).json()

    assert {key: llama[key] for key in ("quality", "region", "tags", "rpm_limit", "tpm_limit")} == {
        "quality": 0.72,
        "region": "eu",
        "tags": ["zero-retention"],
        "rpm_limit": 600,
        "tpm_limit": 200000,
    }
    assert smart["routing"] == routing_catalogue()["aliases"][1]["routing"]
    assert list(smart["routing"]) == list(routing_catalogue()["aliases"][1]["routing"])  # policy_to_dict's order
    assert sonnet["routing"] == {}


def test_patching_routing_facts_changes_only_those_and_records_a_catalogue_change(admin):
    before = ChangeEvent.objects.filter(kind="catalogue").count()

    response = admin.patch(
        deployment_url("mid-mixtral"),
        {"quality": 0.85, "region": "eu", "tags": ["soc2"], "rpm_limit": 100, "tpm_limit": None},
        format="json",
    )

    assert response.status_code == 200, response.content
    mixtral = Deployment.objects.get(name="mid-mixtral")
    assert (mixtral.quality, mixtral.region, mixtral.tags, mixtral.rpm_limit) == (0.85, "eu", ["soc2"], 100)
    assert mixtral.model == "mixtral-8x7b" and str(mixtral.output_per_1m) == "1.0000000000"
    assert ChangeEvent.objects.filter(kind="catalogue").count() > before
    assert AuditLogEntry.objects.get(action="deployment.updated").details["tags"] == ["soc2"]


def test_patching_one_fact_of_a_deployment_without_the_others_keeps_them_unset(admin):
    response = admin.patch(deployment_url("premium-gpt4"), {"quality": 0.9}, format="json")

    assert response.status_code == 200, response.content
    gpt4 = Deployment.objects.get(name="premium-gpt4")
    assert (gpt4.quality, gpt4.region, gpt4.rpm_limit, gpt4.tpm_limit) == (0.9, "", None, 2000000)


def test_routing_facts_are_cleared_with_null_and_empty_values(admin):
    response = admin.patch(
        deployment_url("cheap-llama"),
        {"quality": None, "region": "", "tags": [], "rpm_limit": None, "tpm_limit": None},
        format="json",
    )

    assert response.status_code == 200, response.content
    llama = Deployment.objects.get(name="cheap-llama")
    assert (llama.quality, llama.region, llama.tags, llama.rpm_limit, llama.tpm_limit) == (None, "", [], None, None)


def test_patching_routing_replaces_the_whole_mapping(admin):
    response = admin.patch(
        alias_url("smart"), {"routing": {"strategy": "cheapest", "min_quality": 0.75}}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["routing"] == {"strategy": "cheapest", "min_quality": 0.75}
    assert ModelAlias.objects.get(name="smart").routing == {"strategy": "cheapest", "min_quality": 0.75}


@pytest.mark.parametrize("default", [None, {}, {"strategy": "priority"}])
def test_routing_set_back_to_the_default_is_stored_as_none(admin, default):
    response = admin.patch(alias_url("smart"), {"routing": default}, format="json")

    assert (response.status_code, response.json()["routing"]) == (200, {})
    assert ModelAlias.objects.get(name="smart").routing == {}


def test_patching_an_aliases_deployments_keeps_its_routing_and_checks_it_again(admin):
    kept = admin.patch(
        alias_url("smart"), {"deployments": ["premium-gpt4", "mid-mixtral", "cheap-llama"]}, format="json"
    )
    refused = admin.patch(alias_url("smart"), {"deployments": ["mid-mixtral"]}, format="json")

    assert kept.status_code == 200 and kept.json()["routing"] == routing_catalogue()["aliases"][1]["routing"]
    assert refused.status_code == 400
    assert refused.json() == {
        "routing": [
            "routing.weights.cheap-llama: is not one of this alias's deployments",
            "routing.weights.premium-gpt4: is not one of this alias's deployments",
            "routing.experiment.arms.cheap-llama: is not one of this alias's deployments",
        ]
    }


def test_an_alias_is_created_with_its_routing(admin):
    response = admin.post(
        ALIASES,
        {"name": "eu-only", "deployments": ["cheap-llama"], "routing": {"fallbacks": ["smart"]}},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert ModelAlias.objects.get(name="eu-only").routing == {"strategy": "priority", "fallbacks": ["smart"]}


NOT_A_MAPPING = 'Must be a mapping such as {"strategy": "cheapest"}, or null to route by priority.'


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ({"retry": {"max_attempts": 0}}, "routing.retry.max_attempts: must be from 1 to 20, not 0"),
        ({"retry": {"max_attempts": "3"}}, "routing.retry.max_attempts: must be a whole number from 1 to 20"),
        ({"fallbacks": ["nowhere"]}, "routing.fallbacks[0]: unknown alias 'nowhere'"),
        ({"fallbacks": ["smart"]}, "routing.fallbacks[0]: an alias cannot fall back to itself"),
        ({"strategy": "weighted"}, "routing.weights: the weighted strategy needs weights"),
        ({"breaker": "tight"}, "routing.breaker: must be a mapping"),
        ("cheapest", NOT_A_MAPPING),
        (["cheapest"], NOT_A_MAPPING),
        ({"weights": {"x" * 130_000: 1}}, "Must be at most 120000 characters as JSON."),
    ],
)
def test_a_bad_routing_answers_400_naming_its_path_and_changes_nothing(admin, routing, message):
    before = ModelAlias.objects.get(name="smart").routing

    response = admin.patch(alias_url("smart"), {"routing": routing}, format="json")

    assert (response.status_code, response.json()) == (400, {"routing": [message]})
    assert ModelAlias.objects.get(name="smart").routing == before


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"quality": 1.5}, "quality", "Ensure this value is less than or equal to 1."),
        ({"quality": "high"}, "quality", "Must be a number, not str."),
        ({"region": "EU"}, "region", "must contain only lowercase letters, digits, hyphens and underscores"),
        ({"region": "e" * 33}, "region", "Ensure this field has no more than 32 characters."),
        ({"tags": ["Zero Retention"]}, "tags", "must contain only lowercase letters, digits, hyphens and underscores"),
        ({"tags": ["a", "a"]}, "tags", "'a' is listed twice"),
        ({"tags": [f"t{n}" for n in range(21)]}, "tags", "Ensure this field has no more than 20 elements."),
        ({"tags": "soc2"}, "tags", 'Expected a list of items but got type "str".'),
        ({"rpm_limit": 0}, "rpm_limit", "Ensure this value is greater than or equal to 1."),
        ({"tpm_limit": 2**31}, "tpm_limit", "Ensure this value is less than or equal to 2147483647."),
        ({"rpm_limit": 1.5}, "rpm_limit", "Must be an integer, not float."),
    ],
)
def test_a_bad_routing_fact_answers_400_naming_its_field_and_changes_nothing(admin, body, field, message):
    before = Deployment.objects.filter(name="cheap-llama").values().get()

    response = admin.patch(deployment_url("cheap-llama"), body, format="json")

    assert response.status_code == 400
    assert response.json()[field] in ([message], {"0": [message]}, {"1": [message]}), response.json()
    assert Deployment.objects.filter(name="cheap-llama").values().get() == before


def test_only_platform_admins_change_routing(admin):
    member = token_client(UserFactory())

    response = member.patch(alias_url("smart"), {"routing": {}}, format="json")

    assert response.status_code == 403
    assert ModelAlias.objects.get(name="smart").routing != {}
