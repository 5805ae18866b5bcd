import io
from decimal import Decimal

import pytest
import yaml
from cryptography.fernet import Fernet
from django.core.management import call_command

from routing.catalogue import CatalogueError, export_catalogue, import_catalogue
from routing.credentials import encrypt_secret
from routing.models import AliasDeployment, Deployment, ModelAlias, Provider


@pytest.fixture(autouse=True)
def platform(settings):
    settings.TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS = True
    settings.TOLLWAY_ALLOW_PRIVATE_UPSTREAMS = False
    settings.TOLLWAY_FERNET_KEYS = [Fernet.generate_key().decode()]


@pytest.fixture
def stored_catalogue(db):
    stored = Provider.objects.create(
        name="openai-main",
        kind="openai-compatible",
        base_url="http://127.0.0.1:9101/v1",
        api_key_encrypted=encrypt_secret("sk-very-secret"),
    )
    from_env = Provider.objects.create(
        name="azure-east",
        kind="azure-openai",
        base_url="http://127.0.0.1:9102",
        api_key_env="AZURE_OPENAI_KEY",
        api_version="2024-10-21",
        timeout_s=30.0,
        is_enabled=False,
    )
    mini = Deployment.objects.create(
        name="main-gpt-4o-mini",
        provider=stored,
        model="gpt-4o-mini",
        input_per_1m=Decimal("0.15"),
        output_per_1m=Decimal("0.6"),
        cached_input_per_1m=Decimal("0.075"),
        context_window=128000,
        capabilities=["chat", "tools"],
    )
    east = Deployment.objects.create(
        name="east-gpt-4o-mini", provider=from_env, model="mini", input_per_1m=Decimal("10"), output_per_1m=0
    )
    alias = ModelAlias.objects.create(name="gpt-4o-mini", description="The small one.")
    # Priorities deliberately disagree with creation order and with names.
    AliasDeployment.objects.create(alias=alias, deployment=mini, priority=5)
    AliasDeployment.objects.create(alias=alias, deployment=east, priority=1)


def test_the_export_describes_every_entry_in_the_import_format(stored_catalogue):
    assert export_catalogue() == {
        "providers": [
            {
                "name": "azure-east",
                "kind": "azure-openai",
                "base_url": "http://127.0.0.1:9102",
                "api_key_env": "AZURE_OPENAI_KEY",
                "api_version": "2024-10-21",
                "timeout_s": 30.0,
                "connect_timeout_s": 5.0,
                "enabled": False,
            },
            {
                "name": "openai-main",
                "kind": "openai-compatible",
                "base_url": "http://127.0.0.1:9101/v1",
                "api_key_stored": True,
                "timeout_s": 120.0,
                "connect_timeout_s": 5.0,
                "enabled": True,
            },
        ],
        "deployments": [
            {
                "name": "east-gpt-4o-mini",
                "provider": "azure-east",
                "model": "mini",
                "input_per_1m": "10",
                "output_per_1m": "0",
                "enabled": True,
            },
            {
                "name": "main-gpt-4o-mini",
                "provider": "openai-main",
                "model": "gpt-4o-mini",
                "input_per_1m": "0.15",
                "output_per_1m": "0.6",
                "cached_input_per_1m": "0.075",
                "context_window": 128000,
                "capabilities": ["chat", "tools"],
                "enabled": True,
            },
        ],
        "aliases": [
            {
                "name": "gpt-4o-mini",
                "description": "The small one.",
                "deployments": ["east-gpt-4o-mini", "main-gpt-4o-mini"],
            }
        ],
    }


@pytest.mark.django_db
def test_prices_are_exported_as_plain_decimal_strings_without_an_exponent():
    provider = Provider.objects.create(name="p", kind="openai", base_url="http://127.0.0.1:9101")
    Deployment.objects.create(
        name="d", provider=provider, model="m", input_per_1m=Decimal("0.0000001"), output_per_1m=Decimal("1000")
    )

    (entry,) = export_catalogue()["deployments"]

    assert (entry["input_per_1m"], entry["output_per_1m"]) == ("0.0000001", "1000")


def test_the_exported_yaml_never_contains_a_secret(stored_catalogue):
    out = io.StringIO()

    call_command("export_catalogue", stdout=out)

    text = out.getvalue()
    assert "sk-very-secret" not in text
    assert Provider.objects.get(name="openai-main").api_key_encrypted not in text
    assert yaml.safe_load(text)["providers"][1]["api_key_stored"] is True


def test_the_exported_yaml_keeps_the_order_of_the_import_format(stored_catalogue):
    out = io.StringIO()

    call_command("export_catalogue", stdout=out)

    assert list(yaml.safe_load(out.getvalue())) == ["providers", "deployments", "aliases"]
    assert "  input_per_1m: '0.15'\n" in out.getvalue()
    assert out.getvalue().index("model: gpt-4o-mini") < out.getvalue().index("input_per_1m: '0.15'")


def test_importing_an_export_changes_nothing(stored_catalogue, tmp_path):
    path = tmp_path / "catalogue.yaml"
    call_command("export_catalogue", str(path), stdout=io.StringIO())
    before = Provider.objects.get(name="openai-main").api_key_encrypted

    out = io.StringIO()
    call_command("import_catalogue", str(path), stdout=out)

    assert out.getvalue().strip() == (
        f"{path}: providers 0 created, 0 updated, 2 unchanged; deployments 0 created, 0 updated, 2 unchanged; "
        "aliases 0 created, 0 updated, 1 unchanged"
    )
    assert Provider.objects.get(name="openai-main").api_key_encrypted == before


@pytest.mark.django_db
def test_a_catalogue_imported_from_yaml_exports_back_to_the_same_entries(tmp_path):
    data = {
        "providers": [
            {"name": "p", "kind": "openai-compatible", "base_url": "http://127.0.0.1:9101/v1", "api_key": "sk-x"}
        ],
        "deployments": [
            {"name": "d", "provider": "p", "model": "m", "input_per_1m": 0.15, "output_per_1m": "0.60"},
        ],
        "aliases": [{"name": "a", "deployments": ["d"]}],
    }
    import_catalogue(data=data)

    exported = export_catalogue()

    assert exported["providers"][0]["api_key_stored"] is True
    assert "api_key" not in exported["providers"][0]
    assert (exported["deployments"][0]["input_per_1m"], exported["deployments"][0]["output_per_1m"]) == ("0.15", "0.6")
    report = import_catalogue(data=exported)
    assert not report.has_changes


def test_the_command_writes_to_a_file_when_given_one(stored_catalogue, tmp_path):
    path = tmp_path / "catalogue.yaml"
    out = io.StringIO()

    call_command("export_catalogue", str(path), stdout=out)

    assert yaml.safe_load(path.read_text()) == export_catalogue()
    assert out.getvalue().strip() == f"wrote 2 providers, 2 deployments, 1 aliases to {path}"


@pytest.mark.django_db
def test_the_demo_set_up_exports_and_imports_back_where_loopback_upstreams_are_refused(settings, tmp_path):
    # `make run` allows loopback only for the server it starts; a newcomer's manage.py commands do not.
    settings.DATA_DIR = tmp_path
    call_command(
        "bootstrap_demo", "--gateway-url", "http://127.0.0.1:8000", "--with-demo-provider", stdout=io.StringIO()
    )
    settings.TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS = False
    path = tmp_path / "catalogue.yaml"
    call_command("export_catalogue", str(path), stdout=io.StringIO())

    out = io.StringIO()
    call_command("import_catalogue", str(path), stdout=out)

    assert out.getvalue().strip() == (
        f"{path}: providers 0 created, 0 updated, 1 unchanged; deployments 0 created, 0 updated, 2 unchanged; "
        "aliases 0 created, 0 updated, 3 unchanged"
    )


@pytest.mark.django_db
def test_moving_a_stored_provider_to_another_loopback_url_is_still_refused_naming_the_setting(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    call_command(
        "bootstrap_demo", "--gateway-url", "http://127.0.0.1:8000", "--with-demo-provider", stdout=io.StringIO()
    )
    settings.TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS = False
    exported = export_catalogue()
    exported["providers"][0]["base_url"] = "http://127.0.0.1:6379"

    with pytest.raises(CatalogueError) as refused:
        import_catalogue(data=exported)

    assert refused.value.errors == [
        "providers[0].base_url: base_url resolves to loopback address 127.0.0.1, which this platform refuses"
        " (TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS=1 allows it)"
    ]
    assert Provider.objects.get(name="demo").base_url == "http://127.0.0.1:8000/demo-upstream/v1"
