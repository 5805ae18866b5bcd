"""A catalogue with a bad routing fact or a bad `routing:` is refused whole, every problem named by its path
(`aliases[1].routing.retry.max_attempts: ...`): nothing of the file is written."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from routing.catalogue import CatalogueError, import_catalogue
from routing.models import AliasDeployment, Deployment, ModelAlias, Provider
from tests.catalogue.documents import platform, routing_catalogue  # noqa: F401 -- a fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("platform")]


def stored_catalogue() -> list:
    return [
        list(model.objects.order_by("pk").values()) for model in (Provider, Deployment, ModelAlias, AliasDeployment)
    ]


def refusal_of(data: dict) -> list[str]:
    with pytest.raises(CatalogueError) as refused:
        import_catalogue(data=data)
    return refused.value.errors


def llama(data: dict) -> dict:
    return data["deployments"][0]


def smart(data: dict) -> dict:
    return data["aliases"][1]["routing"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: llama(d).update(quality=1.2), "deployments[0].quality: must be from 0 to 1, not 1.2"),
        (lambda d: llama(d).update(quality=-0.1), "deployments[0].quality: must be from 0 to 1, not -0.1"),
        (lambda d: llama(d).update(quality="high"), "deployments[0].quality: must be a number from 0 to 1"),
        (lambda d: llama(d).update(quality=True), "deployments[0].quality: must be a number from 0 to 1"),
        (
            lambda d: llama(d).update(region="EU"),
            "deployments[0].region: must contain only lowercase letters, digits, hyphens and underscores",
        ),
        (lambda d: llama(d).update(region="eu west"), "deployments[0].region: must contain only lowercase"),
        (lambda d: llama(d).update(region="e" * 33), "deployments[0].region: must be at most 32 characters"),
        (lambda d: llama(d).update(region=["eu"]), "deployments[0].region: must be a non-empty string"),
        (lambda d: llama(d).update(tags="zero-retention"), "deployments[0].tags: must be a list"),
        (lambda d: llama(d).update(tags=["a", "a"]), "deployments[0].tags[1]: 'a' is listed twice"),
        (lambda d: llama(d).update(tags=["ok", "Not ok"]), "deployments[0].tags[1]: must contain only lowercase"),
        (lambda d: llama(d).update(tags=["t" * 33]), "deployments[0].tags[0]: must be at most 32 characters"),
        (lambda d: llama(d).update(tags=[""]), "deployments[0].tags[0]: must be a non-empty string"),
        (
            lambda d: llama(d).update(tags=[f"t{n}" for n in range(21)]),
            "deployments[0].tags: must have at most 20 entries, not 21",
        ),
        (lambda d: llama(d).update(rpm_limit=0), "deployments[0].rpm_limit: must be between 1 and 2147483647"),
        (lambda d: llama(d).update(tpm_limit=2**31), "deployments[0].tpm_limit: must be between 1 and 2147483647"),
        (lambda d: llama(d).update(rpm_limit=1.5), "deployments[0].rpm_limit: must be a whole number"),
        (lambda d: llama(d).update(tpm_limit="lots"), "deployments[0].tpm_limit: must be a whole number"),
        (
            lambda d: smart(d)["retry"].update(max_attempts=0),
            "aliases[1].routing.retry.max_attempts: must be from 1 to 20, not 0",
        ),
        (
            lambda d: smart(d)["breaker"].update(error_rate=2),
            "aliases[1].routing.breaker.error_rate: must be from 0.01 to 1.0, not 2",
        ),
        (lambda d: smart(d).update(strategy="fastest"), "aliases[1].routing.strategy: must be one of priority, "),
        (lambda d: smart(d).update(min_quality=1.5), "aliases[1].routing.min_quality: must be from 0 to 1, not 1.5"),
        (lambda d: smart(d).update(colour="red"), "aliases[1].routing.colour: unknown key"),
        (lambda d: d["aliases"][1].update(routing="cheapest"), "aliases[1].routing: must be a mapping"),
        (
            lambda d: smart(d)["weights"].update({"nowhere": 1}),
            "aliases[1].routing.weights.nowhere: is not one of this alias's deployments",
        ),
        (
            lambda d: smart(d)["experiment"]["arms"].update({"claude": 5}),
            "aliases[1].routing.experiment.arms.claude: is not one of this alias's deployments",
        ),
        (
            lambda d: smart(d).update(fallbacks=["claude-sonnet", "nowhere"]),
            "aliases[1].routing.fallbacks[1]: unknown alias 'nowhere'",
        ),
        (
            lambda d: smart(d).update(fallbacks=["smart"]),
            "aliases[1].routing.fallbacks[0]: an alias cannot fall back to itself",
        ),
        (
            lambda d: smart(d).update(fallbacks=["claude-sonnet", "claude-sonnet", "smart"]),
            "aliases[1].routing.fallbacks[2]: an alias cannot fall back to itself",
        ),
        (lambda d: smart(d).update(fallbacks="claude-sonnet"), "aliases[1].routing.fallbacks: must be a list"),
        (
            lambda d: smart(d).update(fallbacks=[f"fallback-{n}" for n in range(11)]),
            "aliases[1].routing.fallbacks: must name at most 10 aliases, not 11",
        ),
    ],
)
def test_a_bad_value_is_refused_with_its_path_and_nothing_is_written(change, expected):
    data = routing_catalogue()
    change(data)

    errors = refusal_of(data)

    assert any(error.startswith(expected) for error in errors), errors
    assert stored_catalogue() == [[], [], [], []]


def test_one_bad_alias_refuses_the_whole_file_even_over_a_stored_catalogue():
    import_catalogue(data=routing_catalogue())
    before = stored_catalogue()
    data = routing_catalogue()
    llama(data)["quality"] = 0.5  # valid, and must not be applied
    data["aliases"].append({"name": "fast", "deployments": ["cheap-llama"], "routing": {"retry": {"max_attempts": 0}}})

    errors = refusal_of(data)

    assert errors == ["aliases[2].routing.retry.max_attempts: must be from 1 to 20, not 0"]
    assert stored_catalogue() == before


def test_every_problem_is_reported_at_once_in_document_order():
    data = routing_catalogue()
    llama(data)["region"] = "EU"
    data["aliases"][0]["routing"] = {"fallbacks": ["nowhere"]}
    smart(data)["weights"] = {"nowhere": 1}
    smart(data)["fallbacks"] = ["elsewhere"]

    errors = refusal_of(data)

    assert [error.split(":")[0] for error in errors] == [
        "deployments[0].region",
        "aliases[0].routing.fallbacks[0]",
        "aliases[1].routing.weights.nowhere",
        "aliases[1].routing.fallbacks[0]",
    ]


def test_a_fallback_may_name_an_alias_defined_later_in_the_file_or_already_stored():
    import_catalogue(data={**routing_catalogue(), "aliases": routing_catalogue()["aliases"][:1]})
    data = routing_catalogue()
    data["aliases"] = [data["aliases"][1], {"name": "later", "deployments": ["mid-mixtral"]}]
    data["aliases"][0]["routing"]["fallbacks"] = ["later", "claude-sonnet"]  # in this file, below; stored only

    import_catalogue(data=data)

    assert ModelAlias.objects.get(name="smart").routing["fallbacks"] == ["later", "claude-sonnet"]


def test_a_weights_deployment_must_be_the_aliases_own_even_when_it_exists():
    data = routing_catalogue()
    data["aliases"][0]["routing"] = {"strategy": "weighted", "weights": {"cheap-llama": 1}}

    errors = refusal_of(data)

    assert errors == ["aliases[0].routing.weights.cheap-llama: is not one of this alias's deployments"]


def test_the_command_prints_each_problem_with_its_path(tmp_path):
    path = tmp_path / "catalogue.yaml"
    path.write_text("aliases:\n  - name: fast\n    deployments: [nowhere]\n    routing: {retry: {max_attempts: 0}}\n")
    err = io.StringIO()

    with pytest.raises(CommandError, match="2 error"):
        call_command("import_catalogue", str(path), stdout=io.StringIO(), stderr=err)

    assert err.getvalue().splitlines() == [
        f"{path}: aliases[0].routing.retry.max_attempts: must be from 1 to 20, not 0",
        f"{path}: aliases[0].deployments[0]: unknown deployment 'nowhere'",
    ]
