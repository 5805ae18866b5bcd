"""The console's alias form sets part two's bandit, experiment and learned routing: the same input gives the same
stored `routing:` as the catalogue YAML and the REST API, a save never drops what the form shows or does not
show, refusals go beside the field their path names, and the page shows the learned model the alias routes with."""

import json
from datetime import UTC

import pytest

from routing import services
from routing.catalogue import import_catalogue
from routing.models import ModelAlias
from tests.catalogue.console_forms import as_rendered
from tests.catalogue.documents import platform, routing_catalogue  # noqa: F401 -- a fixture
from tests.catalogue.test_routing_console import routing_url
from tests.portal.factories import UserFactory, token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("platform")]

BANDIT = {
    "strategy": "bandit",
    "bandit": {"weights": {"quality": 1, "cost": 0.5, "latency": 0.25}, "exploration": 0.2, "frozen": True},
}
EXPERIMENT = {
    "strategy": "cheapest",
    "experiment": {"name": "llama-or-gpt", "arms": {"cheap-llama": 70, "premium-gpt4": 30}},
}
LEARNED = {"strategy": "learned", "min_quality": 0.8, "learned": {"trade_off": 0.05}}
# The form's fields for each mapping above: what an admin types in.
TYPED = {
    "bandit": {
        "strategy": "bandit",
        "bandit_quality": "1",
        "bandit_cost": "0.5",
        "bandit_latency": "0.25",
        "bandit_exploration": "0.2",
        "bandit_frozen": "on",
    },
    "experiment": {
        "strategy": "cheapest",
        "experiment_name": "llama-or-gpt",
        "arm_cheap-llama": "70",
        "arm_premium-gpt4": "30",
    },
    "learned": {"strategy": "learned", "min_quality": "0.8", "learned_trade_off": "0.05"},
}
LINES = [{"prompt": f"Fix this SQL query {n}", "scores": {"cheap-llama": 1, "premium-gpt4": 1}} for n in range(8)] + [
    {"prompt": f"Write a sonnet, poem {n}", "scores": {"cheap-llama": 0, "premium-gpt4": 1}} for n in range(8)
]


@pytest.fixture
def admin(client):
    import_catalogue(data=routing_catalogue())
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    return client


def stored(alias: str = "smart") -> dict:
    return ModelAlias.objects.get(name=alias).routing


def through_the_form(client, typed: dict) -> dict:
    """Clear every field of the form, type `typed`, save; the stored routing."""
    form = {name: "" for name in client.get(routing_url("smart")).context["form"].fields}
    form.pop("bandit_frozen")  # an unticked box is not posted
    response = client.post(routing_url("smart"), {**form, **typed})
    assert response.status_code == 302, response.context["form"].errors
    return stored()


def through_the_yaml(routing: dict) -> dict:
    document = routing_catalogue()
    document["aliases"][1]["routing"] = routing
    import_catalogue(data=document)
    return stored()


def through_rest(routing: dict) -> dict:
    admin = token_client(UserFactory(is_superuser=True))
    response = admin.patch(
        f"/api/v1/catalogue/aliases/{ModelAlias.objects.get(name='smart').pk}/", {"routing": routing}, format="json"
    )
    assert response.status_code == 200, response.json()
    return stored()


@pytest.mark.parametrize(("part", "routing"), [("bandit", BANDIT), ("experiment", EXPERIMENT), ("learned", LEARNED)])
def test_the_form_the_yaml_and_rest_store_the_same_routing_for_the_same_input(admin, part, routing):
    from_the_form = through_the_form(admin, TYPED[part])
    from_the_yaml = through_the_yaml(routing)
    from_rest = through_rest(routing)

    assert from_the_form == from_the_yaml == from_rest
    assert from_the_form[part] == routing[part]


def test_the_form_starts_from_the_stored_bandit_experiment_and_trade_off(admin):
    through_the_yaml({**BANDIT, **EXPERIMENT, "strategy": "bandit", "learned": {"trade_off": 0.05}})

    form = admin.get(routing_url("smart")).context["form"]

    assert [form[f"bandit_{m}"].value() for m in ("quality", "cost", "latency")] == [1, 0.5, 0.25]
    assert (form["bandit_exploration"].value(), form["bandit_frozen"].value()) == (0.2, True)
    assert form["experiment_name"].value() == "llama-or-gpt"
    assert [form[f"arm_{d}"].value() for d in ("cheap-llama", "mid-mixtral", "premium-gpt4")] == [70, None, 30]
    assert form["learned_trade_off"].value() == 0.05


def test_saving_the_form_as_shown_with_one_change_keeps_every_other_key(admin):
    before = stored()
    assert {"experiment", "bandit"} <= set(before)

    admin.post(routing_url("smart"), as_rendered(admin, routing_url("smart"), retry_max_attempts="5"))

    assert stored() == {**before, "retry": {**before["retry"], "max_attempts": 5}}


def test_unticking_frozen_and_clearing_the_experiment_remove_them(admin):
    through_the_yaml({**BANDIT, **EXPERIMENT, "strategy": "bandit"})
    shown = as_rendered(
        admin, routing_url("smart"), experiment_name="", **{"arm_cheap-llama": "", "arm_premium-gpt4": ""}
    )
    del shown["bandit_frozen"]

    admin.post(routing_url("smart"), shown)

    assert "experiment" not in stored()
    assert stored()["bandit"] == {"weights": {"quality": 1, "cost": 0.5, "latency": 0.25}, "exploration": 0.2}


def test_arms_adding_up_to_over_100_percent_are_refused_beside_the_first_arm(admin):
    before = stored()

    response = admin.post(
        routing_url("smart"), {**TYPED["experiment"], "arm_cheap-llama": "80", "arm_mid-mixtral": "30"}
    )

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["arm_cheap-llama"] == ["The arms add up to 140%: at most 100% of calls."]
    assert "The arms add up to 140%" in response.content.decode()
    assert stored() == before


def test_arms_under_100_percent_leave_the_rest_to_the_strategy_as_in_the_yaml(admin):
    typed = {"strategy": "cheapest", "experiment_name": "tenth", "arm_mid-mixtral": "10"}

    assert through_the_form(admin, typed)["experiment"] == {"name": "tenth", "arms": {"mid-mixtral": 10}}


@pytest.mark.parametrize(
    ("typed", "field", "message"),
    [
        (
            {"bandit_exploration": "1.5"},
            "bandit_exploration",
            "routing.bandit.exploration: must be from 0 to 1, not 1.5",
        ),
        ({"bandit_cost": "-1"}, "bandit_cost", "routing.bandit.weights.cost: must be from 0 to 1000, not -1.0"),
        (
            {"experiment_name": "", "arm_cheap-llama": "50"},
            "experiment_name",
            "routing.experiment.name: must be a name of 1 to 100 characters",
        ),
        (
            {"experiment_name": "x", "arm_cheap-llama": "101"},
            "arm_cheap-llama",
            "The arms add up to 101%: at most 100% of calls.",
        ),
        (
            {"experiment_name": "x" * 101, "arm_cheap-llama": "5"},
            "experiment_name",
            "routing.experiment.name: must be a name of 1 to 100 characters",
        ),
        (
            {"learned_trade_off": "101"},
            "learned_trade_off",
            "routing.learned.trade_off: must be from 0 to 100, not 101.0",
        ),
        ({"arm_cheap-llama": "12.5", "experiment_name": "x"}, "arm_cheap-llama", "Enter a whole number."),
    ],
)
def test_a_bad_value_is_refused_beside_its_field_and_nothing_changes(admin, typed, field, message):
    before = stored()

    response = admin.post(routing_url("smart"), {"strategy": "bandit", **typed})

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors[field] == [message], errors
    assert stored() == before


def test_the_page_shows_the_learned_model_the_alias_routes_with(admin):
    through_the_yaml(LEARNED)
    assert "not trained yet" in admin.get(routing_url("smart")).content.decode()

    alias = ModelAlias.objects.get(name="smart")
    services.train_router(alias=alias, lines=[json.dumps(line) for line in LINES])
    latest = services.train_router(alias=alias, lines=[json.dumps(line) for line in LINES])
    page = admin.get(routing_url("smart")).content.decode()

    shown = page[page.index('data-testid="learned-model"') :][:600]
    trained_at = latest.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    assert "<strong>v2</strong>" in shown and f"{trained_at} UTC" in shown
    assert "from 16 rows" in shown and "predicts cheap-llama, premium-gpt4" in shown


def test_rest_shows_the_learned_model_read_only_and_null_before_one_is_trained(admin):
    through_the_yaml(LEARNED)
    reader = token_client(UserFactory())
    url = f"/api/v1/catalogue/aliases/{ModelAlias.objects.get(name='smart').pk}/"
    assert reader.get(url).json()["learned_model"] is None

    latest = services.train_router(alias=ModelAlias.objects.get(name="smart"), lines=[json.dumps(x) for x in LINES])
    detail = reader.get(url).json()["learned_model"]
    listed = {a["name"]: a["learned_model"] for a in reader.get("/api/v1/catalogue/aliases/").json()["results"]}
    superuser = token_client(UserFactory(is_superuser=True))
    written = superuser.patch(url, {"learned_model": {"version": 99}, "description": "d"}, format="json")

    assert detail == {
        "version": 1,
        "trained_at": latest.created_at.isoformat().replace("+00:00", "Z"),
        "rows": 16,
        "deployments": ["cheap-llama", "premium-gpt4"],
        "recommended": detail["recommended"],  # tests/routing/test_learned_recommended_shown.py
    }
    assert listed == {"claude-sonnet": None, "smart": detail}
    assert written.status_code == 200 and written.json()["learned_model"] == detail  # read-only: ignored
    assert reader.get("/api/v1/catalogue/aliases/999999/").status_code == 404
