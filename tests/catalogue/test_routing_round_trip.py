"""Deployments' routing facts and aliases' `routing:` go into the catalogue and come back out unchanged: an
export imports back as a no-op, and a catalogue without them exports as it did before they existed."""

import io
import json

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from routing.catalogue import dump_catalogue_yaml, export_catalogue, import_catalogue, load_catalogue_yaml
from routing.models import Deployment, ModelAlias
from tests.catalogue.documents import platform, routing_catalogue  # noqa: F401 -- a fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("platform")]


def writes_during(action) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        action()
    return [q["sql"] for q in queries if q["sql"].lstrip().split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]


def test_every_routing_fact_of_a_deployment_is_stored():
    import_catalogue(data=routing_catalogue())

    llama = Deployment.objects.get(name="cheap-llama")
    assert (llama.quality, llama.region, llama.tags) == (0.72, "eu", ["zero-retention"])
    assert (llama.rpm_limit, llama.tpm_limit) == (600, 200000)
    gpt4 = Deployment.objects.get(name="premium-gpt4")
    assert (gpt4.region, gpt4.tags, gpt4.rpm_limit, gpt4.tpm_limit) == ("", ["zero-retention", "soc2"], None, 2000000)


def test_an_aliases_routing_is_stored_as_the_mapping_policy_to_dict_writes():
    import_catalogue(data=routing_catalogue())

    assert ModelAlias.objects.get(name="smart").routing == routing_catalogue()["aliases"][1]["routing"]
    assert ModelAlias.objects.get(name="claude-sonnet").routing == {}


def test_the_export_gives_back_every_key_as_the_file_wrote_it():
    written = routing_catalogue()
    import_catalogue(data=written)

    exported = export_catalogue()

    assert exported["deployments"] == [{**entry, "enabled": True} for entry in written["deployments"]]
    # Key for key, in the file's order (json.dumps keeps it; == on dicts would not look).
    assert json.dumps(exported["aliases"]) == json.dumps(written["aliases"])
    assert json.dumps(load_catalogue_yaml(text=dump_catalogue_yaml(exported))["aliases"]) == json.dumps(
        written["aliases"]
    )


def test_weights_and_arms_are_exported_in_the_aliases_deployment_order_whatever_the_database():
    data = routing_catalogue()
    routing = data["aliases"][1]["routing"]
    routing["weights"] = {"premium-gpt4": 1, "mid-mixtral": 2, "cheap-llama": 3}
    routing["experiment"]["arms"] = {"mid-mixtral": 10, "cheap-llama": 90}

    import_catalogue(data=data)
    exported = export_catalogue()["aliases"][1]["routing"]

    assert list(exported["weights"].items()) == [("cheap-llama", 3), ("mid-mixtral", 2), ("premium-gpt4", 1)]
    assert list(exported["experiment"]["arms"]) == ["cheap-llama", "mid-mixtral"]
    assert not import_catalogue(data={"aliases": export_catalogue()["aliases"]}).has_changes


def test_importing_the_export_changes_nothing_and_says_so(tmp_path):
    import_catalogue(data=routing_catalogue())
    path = tmp_path / "catalogue.yaml"
    call_command("export_catalogue", str(path), stdout=io.StringIO())
    exported = load_catalogue_yaml(text=path.read_text())

    reports = []
    writes = writes_during(lambda: reports.append(import_catalogue(data=exported, source=str(path))))

    assert writes == []
    assert not reports[0].has_changes
    assert (reports[0].deployments.unchanged, reports[0].aliases.unchanged) == (3, 2)


def test_routing_that_only_restates_the_defaults_is_stored_and_exported_as_none():
    data = routing_catalogue()
    data["aliases"][1]["routing"] = {"strategy": "priority", "retry": {"base_delay_ms": 100}}

    import_catalogue(data=data)

    assert ModelAlias.objects.get(name="smart").routing == {}
    assert "routing" not in export_catalogue()["aliases"][1]


def test_routing_facts_left_out_of_an_entry_are_cleared():
    import_catalogue(data=routing_catalogue())
    data = routing_catalogue()
    for key in ("quality", "region", "tags", "rpm_limit", "tpm_limit"):
        del data["deployments"][0][key]
    del data["aliases"][1]["routing"]

    report = import_catalogue(data=data)

    llama = Deployment.objects.get(name="cheap-llama")
    assert (llama.quality, llama.region, llama.tags, llama.rpm_limit, llama.tpm_limit) == (None, "", [], None, None)
    assert ModelAlias.objects.get(name="smart").routing == {}
    assert (report.deployments.updated, report.aliases.updated) == (1, 1)


def test_a_deployment_and_an_alias_without_routing_export_no_routing_keys():
    data = routing_catalogue()
    data["deployments"] = data["deployments"][2:]
    for key in ("quality", "tags", "tpm_limit"):
        del data["deployments"][0][key]
    data["aliases"] = data["aliases"][:1]

    import_catalogue(data=data)

    (deployment,) = export_catalogue()["deployments"]
    assert list(deployment) == ["name", "provider", "model", "input_per_1m", "output_per_1m", "enabled"]
    assert list(export_catalogue()["aliases"][0]) == ["name", "deployments"]


def test_a_weight_left_on_a_deployment_removed_in_the_admin_is_dropped_from_the_export():
    import_catalogue(data=routing_catalogue())
    smart = ModelAlias.objects.get(name="smart")
    smart.routes.filter(deployment__name="premium-gpt4").delete()  # what the admin's inline allows

    exported = export_catalogue()

    assert exported["aliases"][1]["routing"]["weights"] == {"cheap-llama": 3}
    assert import_catalogue(data=exported).aliases.updated == 1  # accepted: it no longer names premium-gpt4
    assert ModelAlias.objects.get(name="smart").routing["weights"] == {"cheap-llama": 3}
