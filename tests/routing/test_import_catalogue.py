import datetime
import io
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from routing.catalogue import CatalogueError, import_catalogue
from routing.credentials import decrypt_secret
from routing.models import AliasDeployment, Deployment, ModelAlias, Provider

CATALOGUE_YAML = """\
providers:
  - name: openai-main
    kind: openai-compatible
    base_url: http://127.0.0.1:9101/v1/
    api_key: sk-test-secret
  - name: local-vllm
    kind: openai-compatible
    base_url: http://127.0.0.1:9102/v1
    timeout_s: 30
    enabled: false
deployments:
  - name: main-gpt-4o-mini
    provider: openai-main
    model: gpt-4o-mini
    input_per_1m: "0.15"
    output_per_1m: "0.60"
    cached_input_per_1m: "0.075"
    context_window: 128000
    capabilities: [chat, tools]
  - name: local-llama
    provider: local-vllm
    model: meta-llama/Llama-3.1-8B-Instruct
    input_per_1m: 0
    output_per_1m: 0
aliases:
  - name: gpt-4o-mini
    description: The small one.
    deployments: [main-gpt-4o-mini, local-llama]
"""


@pytest.fixture(autouse=True)
def platform(settings):
    # The upstreams below are on loopback; say so here rather than trust the environment the settings read.
    settings.TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS = True
    settings.TOLLWAY_ALLOW_PRIVATE_UPSTREAMS = False
    settings.TOLLWAY_FERNET_KEYS = [Fernet.generate_key().decode()]


def catalogue() -> dict:
    return {
        "providers": [
            {
                "name": "openai-main",
                "kind": "openai-compatible",
                "base_url": "http://127.0.0.1:9101/v1",
                "api_key": "sk-test-secret",
            },
        ],
        "deployments": [
            {
                "name": "main-gpt-4o-mini",
                "provider": "openai-main",
                "model": "gpt-4o-mini",
                "input_per_1m": "0.15",
                "output_per_1m": "0.60",
            },
            {
                "name": "main-gpt-4o",
                "provider": "openai-main",
                "model": "gpt-4o",
                "input_per_1m": "2.50",
                "output_per_1m": "10",
            },
        ],
        "aliases": [{"name": "gpt-4o-mini", "deployments": ["main-gpt-4o-mini", "main-gpt-4o"]}],
    }


def stored_catalogue() -> list:
    """Every stored row, for checking that a refused import wrote nothing."""
    return [
        list(Provider.objects.order_by("pk").values()),
        list(Deployment.objects.order_by("pk").values()),
        list(ModelAlias.objects.order_by("pk").values()),
        list(AliasDeployment.objects.order_by("pk").values()),
    ]


def route_names(alias_name: str) -> list[str]:
    alias = ModelAlias.objects.get(name=alias_name)
    return [route.deployment.name for route in alias.routes.select_related("deployment")]


def writes_during(action) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        action()
    return [q["sql"] for q in queries if q["sql"].lstrip().split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]


@pytest.mark.django_db
def test_importing_a_catalogue_creates_its_providers_deployments_and_aliases():
    report = import_catalogue(data=catalogue())

    provider = Provider.objects.get(name="openai-main")
    assert provider.kind == "openai-compatible"
    assert provider.base_url == "http://127.0.0.1:9101/v1"
    assert (provider.timeout_s, provider.connect_timeout_s, provider.is_enabled) == (120.0, 5.0, True)
    deployment = Deployment.objects.get(name="main-gpt-4o-mini")
    assert deployment.provider == provider
    assert deployment.model == "gpt-4o-mini"
    assert (deployment.input_per_1m, deployment.output_per_1m) == (Decimal("0.15"), Decimal("0.6"))
    assert deployment.cached_input_per_1m is None
    assert route_names("gpt-4o-mini") == ["main-gpt-4o-mini", "main-gpt-4o"]
    assert (report.providers.created, report.deployments.created, report.aliases.created) == (1, 2, 1)


@pytest.mark.django_db
def test_importing_the_same_catalogue_twice_changes_nothing_the_second_time():
    import_catalogue(data=catalogue())
    before = stored_catalogue()

    reports = []
    writes = writes_during(lambda: reports.append(import_catalogue(data=catalogue())))

    assert writes == []
    assert stored_catalogue() == before
    report = reports[0]
    assert not report.has_changes
    assert (report.providers.unchanged, report.deployments.unchanged, report.aliases.unchanged) == (1, 2, 1)


@pytest.mark.django_db
def test_changing_one_price_updates_only_that_deployment():
    import_catalogue(data=catalogue())
    data = catalogue()
    data["deployments"][1]["output_per_1m"] = "8"

    report = import_catalogue(data=data)

    assert Deployment.objects.get(name="main-gpt-4o").output_per_1m == Decimal("8")
    assert (report.deployments.created, report.deployments.updated, report.deployments.unchanged) == (0, 1, 1)
    assert (report.providers.unchanged, report.aliases.unchanged) == (1, 1)


@pytest.mark.django_db
def test_an_update_moves_updated_at_so_the_catalogue_snapshot_notices_it():
    import_catalogue(data=catalogue())
    long_ago = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    Deployment.objects.update(updated_at=long_ago)
    ModelAlias.objects.update(updated_at=long_ago)
    data = catalogue()
    data["deployments"][1]["output_per_1m"] = "8"
    data["aliases"][0]["deployments"] = ["main-gpt-4o"]  # only the routes change, not the alias's own columns

    import_catalogue(data=data)

    assert Deployment.objects.get(name="main-gpt-4o").updated_at > long_ago
    assert Deployment.objects.get(name="main-gpt-4o-mini").updated_at == long_ago
    assert ModelAlias.objects.get(name="gpt-4o-mini").updated_at > long_ago


@pytest.mark.django_db
def test_a_failure_while_writing_rolls_back_everything_already_written(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("the database went away")

    # Checking cannot fail late, so stand in for a write that does: the last step of the import.
    monkeypatch.setattr("routing.catalogue.importer._apply_aliases", fail)

    with pytest.raises(RuntimeError):
        import_catalogue(data=catalogue())

    assert stored_catalogue() == [[], [], [], []]


@pytest.mark.django_db
def test_a_field_left_out_of_an_entry_goes_back_to_its_default():
    data = catalogue()
    data["deployments"][0]["context_window"] = 128000
    import_catalogue(data=data)

    report = import_catalogue(data=catalogue())

    assert Deployment.objects.get(name="main-gpt-4o-mini").context_window is None
    assert report.deployments.updated == 1


@pytest.mark.django_db
def test_an_alias_lists_its_deployments_in_the_files_priority_order():
    import_catalogue(data=catalogue())
    data = catalogue()
    data["aliases"][0]["deployments"] = ["main-gpt-4o", "main-gpt-4o-mini"]

    report = import_catalogue(data=data)

    assert route_names("gpt-4o-mini") == ["main-gpt-4o", "main-gpt-4o-mini"]
    assert report.aliases.updated == 1


@pytest.mark.django_db
def test_an_alias_deployment_list_is_replaced_not_merged():
    import_catalogue(data=catalogue())
    data = catalogue()
    data["aliases"][0]["deployments"] = ["main-gpt-4o"]

    import_catalogue(data=data)

    assert route_names("gpt-4o-mini") == ["main-gpt-4o"]


@pytest.mark.django_db
def test_entries_the_file_does_not_mention_are_left_alone():
    import_catalogue(data=catalogue())
    other = Provider.objects.create(name="other", kind="openai", base_url="https://api.example.com/v1")

    import_catalogue(data={"deployments": catalogue()["deployments"][:1]})

    assert Provider.objects.filter(pk=other.pk).exists()
    assert Deployment.objects.filter(name="main-gpt-4o").exists()
    assert route_names("gpt-4o-mini") == ["main-gpt-4o-mini", "main-gpt-4o"]


@pytest.mark.django_db
def test_a_file_may_refer_to_providers_and_deployments_already_stored():
    import_catalogue(data=catalogue())

    import_catalogue(
        data={
            "deployments": [
                {"name": "extra", "provider": "openai-main", "model": "o3", "input_per_1m": 2, "output_per_1m": 8}
            ],
            "aliases": [{"name": "fallback", "deployments": ["main-gpt-4o", "extra"]}],
        }
    )

    assert route_names("fallback") == ["main-gpt-4o", "extra"]


@pytest.mark.django_db
def test_a_yaml_float_price_is_read_through_its_shortest_spelling():
    data = catalogue()
    data["deployments"][0]["input_per_1m"] = 0.15
    data["deployments"][0]["output_per_1m"] = 1e-7

    import_catalogue(data=data)

    deployment = Deployment.objects.get(name="main-gpt-4o-mini")
    assert deployment.input_per_1m == Decimal("0.15")
    assert deployment.output_per_1m == Decimal("0.0000001")


@pytest.mark.django_db
def test_the_api_key_is_stored_encrypted_and_never_in_clear():
    import_catalogue(data=catalogue())

    provider = Provider.objects.get(name="openai-main")
    assert "sk-test-secret" not in provider.api_key_encrypted
    assert decrypt_secret(provider.api_key_encrypted) == "sk-test-secret"
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted FROM routing_provider")
        (column,) = cursor.fetchone()
    assert "sk-test-secret" not in column


@pytest.mark.django_db
def test_reimporting_the_same_api_key_keeps_the_stored_ciphertext():
    import_catalogue(data=catalogue())
    token = Provider.objects.get(name="openai-main").api_key_encrypted

    import_catalogue(data=catalogue())

    assert Provider.objects.get(name="openai-main").api_key_encrypted == token


@pytest.mark.django_db
def test_a_new_api_key_replaces_the_stored_one():
    import_catalogue(data=catalogue())
    data = catalogue()
    data["providers"][0]["api_key"] = "sk-rotated"

    report = import_catalogue(data=data)

    assert decrypt_secret(Provider.objects.get(name="openai-main").api_key_encrypted) == "sk-rotated"
    assert report.providers.updated == 1


@pytest.mark.django_db
def test_an_api_key_env_is_stored_as_the_variable_name_and_drops_a_stored_key():
    import_catalogue(data=catalogue())
    data = catalogue()
    del data["providers"][0]["api_key"]
    data["providers"][0]["api_key_env"] = "OPENAI_API_KEY"

    import_catalogue(data=data)

    provider = Provider.objects.get(name="openai-main")
    assert (provider.api_key_env, provider.api_key_encrypted) == ("OPENAI_API_KEY", "")


@pytest.mark.django_db
def test_a_provider_without_any_key_field_keeps_its_stored_key():
    import_catalogue(data=catalogue())
    data = catalogue()
    del data["providers"][0]["api_key"]
    data["providers"][0]["api_key_stored"] = True

    report = import_catalogue(data=data)

    assert decrypt_secret(Provider.objects.get(name="openai-main").api_key_encrypted) == "sk-test-secret"
    assert report.providers.unchanged == 1


@pytest.mark.django_db
def test_a_key_stored_under_a_fernet_key_no_longer_held_is_replaced_by_the_files(settings):
    import_catalogue(data=catalogue())
    settings.TOLLWAY_FERNET_KEYS = [Fernet.generate_key().decode()]

    report = import_catalogue(data=catalogue())

    assert decrypt_secret(Provider.objects.get(name="openai-main").api_key_encrypted) == "sk-test-secret"
    assert report.providers.updated == 1


def _set(path: tuple, value):
    def change(data):
        target = data
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


def _delete(path: tuple):
    def change(data):
        target = data
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return change


def _append(section: str, entry: dict):
    return lambda data: data[section].append(entry)


INVALID_CHANGES = [
    (
        _set(("providers", 0, "kind"), "opneai"),
        "providers[0].kind: must be one of openai, azure-openai, anthropic, gemini, openai-compatible",
    ),
    (_delete(("providers", 0, "kind")), "providers[0].kind: required"),
    (_set(("providers", 0, "name"), "has space"), "providers[0].name: must contain only letters"),
    (_set(("providers", 0, "base_url"), "ftp://127.0.0.1/"), "providers[0].base_url: base_url must be http or https"),
    (_set(("providers", 0, "base_url"), "http://127.0.0.1/v1?x=1"), "providers[0].base_url: must not have a query"),
    (_set(("providers", 0, "api_key_env"), "OPENAI_API_KEY"), "providers[0].api_key: give api_key or api_key_env"),
    (_set(("providers", 0, "api_key"), ""), "providers[0].api_key: must be a non-empty string"),
    (_set(("providers", 0, "timeout_s"), 0), "providers[0].timeout_s: must be a positive number of seconds"),
    (_set(("providers", 0, "enabled"), "yes"), "providers[0].enabled: must be true or false"),
    (
        _set(("providers", 0, "api_version"), datetime.date(2024, 10, 21)),
        "providers[0].api_version: must be a string; YAML read 2024-10-21 as a date, so put it in quotes",
    ),
    (_set(("deployments", 1, "input_per_1m"), "cheap"), "deployments[1].input_per_1m: not a decimal"),
    (_set(("deployments", 1, "input_per_1m"), "-1"), "deployments[1].input_per_1m: must not be negative"),
    (_set(("deployments", 1, "input_per_1m"), "NaN"), "deployments[1].input_per_1m: must be a finite number"),
    (_set(("deployments", 1, "output_per_1m"), float("inf")), "deployments[1].output_per_1m: must be a finite"),
    (_set(("deployments", 1, "output_per_1m"), True), "deployments[1].output_per_1m: not a decimal"),
    (_set(("deployments", 1, "output_per_1m"), "0.00000000001"), "deployments[1].output_per_1m: at most 10 decimal"),
    (_delete(("deployments", 1, "output_per_1m")), "deployments[1].output_per_1m: required"),
    (_set(("deployments", 0, "context_window"), "128k"), "deployments[0].context_window: must be a whole number"),
    (_set(("deployments", 0, "capabilities"), ["chat", "telepathy"]), "deployments[0].capabilities[1]: must be one"),
    (_set(("deployments", 0, "provider"), "nobody"), "deployments[0].provider: unknown provider 'nobody'"),
    (_set(("deployments", 0, "modle"), "gpt-4o"), "deployments[0].modle: unknown key; did you mean 'model'?"),
    (_set(("aliases", 0, "deployments"), ["main-gpt-4o", "x"]), "aliases[0].deployments[1]: unknown deployment 'x'"),
    (_set(("aliases", 0, "deployments"), []), "aliases[0].deployments: must be a non-empty list"),
    (_set(("aliases", 0, "deployments"), ["main-gpt-4o"] * 2), "aliases[0].deployments[1]: 'main-gpt-4o' is listed"),
    (_append("deployments", {"name": "main-gpt-4o"}), "deployments[2].name: 'main-gpt-4o' is already defined at"),
    (_set(("aliases",), {"name": "x"}), "aliases: must be a list"),
    (_set(("aliases", 0), "gpt-4o-mini"), "aliases[0]: must be a mapping"),
    (_set(("model_aliases",), []), "model_aliases: unknown section"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("change", "expected"), INVALID_CHANGES, ids=[expected for _, expected in INVALID_CHANGES])
def test_an_invalid_catalogue_is_refused_with_the_path_of_the_problem(change, expected):
    data = catalogue()
    change(data)

    with pytest.raises(CatalogueError) as refused:
        import_catalogue(data=data)

    assert any(error.startswith(expected) for error in refused.value.errors), refused.value.errors
    assert stored_catalogue() == [[], [], [], []]


@pytest.mark.django_db
def test_every_problem_in_a_file_is_reported_at_once_and_nothing_is_applied():
    import_catalogue(data=catalogue())
    before = stored_catalogue()
    data = catalogue()
    data["providers"][0]["base_url"] = "http://127.0.0.1:9999/v1"  # valid, and must not be applied
    data["providers"].append({"name": "bad", "kind": "openai", "base_url": "http://169.254.169.254"})
    data["deployments"][0]["input_per_1m"] = "free"
    data["aliases"][0]["deployments"] = ["x"]

    with pytest.raises(CatalogueError) as refused:
        import_catalogue(data=data)

    assert [error.split(":")[0] for error in refused.value.errors] == [
        "providers[1].base_url",
        "deployments[0].input_per_1m",
        "aliases[0].deployments[0]",
    ]
    assert stored_catalogue() == before


@pytest.mark.django_db
def test_a_metadata_address_is_refused_even_when_loopback_and_private_upstreams_are_allowed(settings):
    settings.TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS = True
    settings.TOLLWAY_ALLOW_PRIVATE_UPSTREAMS = True
    data = catalogue()
    data["providers"][0]["base_url"] = "http://169.254.169.254/latest"

    with pytest.raises(CatalogueError) as refused:
        import_catalogue(data=data)

    assert refused.value.errors == [
        "providers[0].base_url: base_url resolves to link-local/metadata address 169.254.169.254"
    ]
    assert not Provider.objects.exists()


@pytest.mark.django_db
def test_a_private_address_is_refused_unless_private_upstreams_are_allowed(settings):
    settings.TOLLWAY_ALLOW_PRIVATE_UPSTREAMS = False
    data = catalogue()
    data["providers"][0]["base_url"] = "http://10.0.0.1:8000/v1"

    with pytest.raises(CatalogueError) as refused:
        import_catalogue(data=data)

    assert refused.value.errors == [
        "providers[0].base_url: base_url resolves to private address 10.0.0.1, which this platform refuses"
        " (TOLLWAY_ALLOW_PRIVATE_UPSTREAMS=1 allows it)"
    ]
    assert not Provider.objects.exists()


@pytest.mark.django_db
def test_a_private_address_is_accepted_when_private_upstreams_are_allowed(settings):
    settings.TOLLWAY_ALLOW_PRIVATE_UPSTREAMS = True
    data = catalogue()
    data["providers"][0]["base_url"] = "http://10.0.0.1:8000/v1"

    import_catalogue(data=data)

    assert Provider.objects.get(name="openai-main").base_url == "http://10.0.0.1:8000/v1"


@pytest.mark.django_db
def test_a_loopback_address_is_refused_unless_loopback_upstreams_are_allowed(settings):
    settings.TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS = False

    with pytest.raises(CatalogueError) as refused:
        import_catalogue(data=catalogue())

    assert refused.value.errors == [
        "providers[0].base_url: base_url resolves to loopback address 127.0.0.1, which this platform refuses"
        " (TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS=1 allows it)"
    ]


@pytest.mark.django_db
def test_the_command_imports_a_yaml_file_and_prints_a_summary(tmp_path):
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE_YAML)
    out = io.StringIO()

    call_command("import_catalogue", str(path), stdout=out)

    assert out.getvalue().strip() == (
        f"{path}: providers 2 created, 0 updated, 0 unchanged; deployments 2 created, 0 updated, 0 unchanged; "
        "aliases 1 created, 0 updated, 0 unchanged"
    )
    assert Provider.objects.get(name="openai-main").base_url == "http://127.0.0.1:9101/v1"
    assert Provider.objects.get(name="local-vllm").is_enabled is False
    deployment = Deployment.objects.get(name="main-gpt-4o-mini")
    assert (deployment.cached_input_per_1m, deployment.context_window) == (Decimal("0.075"), 128000)
    assert deployment.capabilities == ["chat", "tools"]
    assert route_names("gpt-4o-mini") == ["main-gpt-4o-mini", "local-llama"]


@pytest.mark.django_db
def test_the_command_reads_standard_input_when_given_a_dash():
    out = io.StringIO()

    call_command("import_catalogue", "-", stdin=io.StringIO(CATALOGUE_YAML), stdout=out)

    assert out.getvalue().startswith("<stdin>: providers 2 created")
    assert ModelAlias.objects.filter(name="gpt-4o-mini").exists()


@pytest.mark.django_db
def test_the_command_prints_every_error_on_its_own_line_and_fails_with_status_one(tmp_path):
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE_YAML.replace("kind: openai-compatible", "kind: openia").replace('"0.60"', "lots"))
    err = io.StringIO()

    with pytest.raises(CommandError, match="3 error") as failed:
        call_command("import_catalogue", str(path), stderr=err)

    assert failed.value.returncode == 1
    assert err.getvalue().splitlines() == [
        f"{path}: providers[0].kind: must be one of openai, azure-openai, anthropic, gemini, openai-compatible",
        f"{path}: providers[1].kind: must be one of openai, azure-openai, anthropic, gemini, openai-compatible",
        f"{path}: deployments[0].output_per_1m: not a decimal",
    ]
    assert not Provider.objects.exists()


@pytest.mark.django_db
def test_the_command_reports_malformed_yaml_with_its_line(tmp_path):
    path = tmp_path / "catalogue.yaml"
    path.write_text("providers:\n  - name: a\n    kind: [openai\n")
    err = io.StringIO()

    with pytest.raises(CommandError):
        call_command("import_catalogue", str(path), stderr=err)

    assert err.getvalue().startswith(f"{path}: line 4, column 1: not valid YAML")


@pytest.mark.django_db
def test_the_command_refuses_a_key_written_twice_in_one_entry(tmp_path):
    path = tmp_path / "catalogue.yaml"
    path.write_text(
        CATALOGUE_YAML.replace('    output_per_1m: "0.60"\n', '    output_per_1m: "0.60"\n    output_per_1m: "6"\n')
    )
    err = io.StringIO()

    with pytest.raises(CommandError):
        call_command("import_catalogue", str(path), stderr=err)

    assert err.getvalue().strip() == f"{path}: line 17, column 5: not valid YAML: key 'output_per_1m' is given twice"
    assert not Deployment.objects.exists()
