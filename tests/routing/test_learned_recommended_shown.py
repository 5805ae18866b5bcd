"""The learned model's recommended operating point (and the nested margin it was chosen with) is shown read-only
beside the learned model on the console's alias routing page and in REST's `learned_model.recommended`, read from
the start of the stored blob; a version with no cross-validation shows none."""

import json
import random

import pytest

from routing import selectors, services
from routing.catalogue import import_catalogue
from routing.engine import learned
from routing.models import LearnedRouter, ModelAlias
from tests.catalogue.documents import platform, routing_catalogue  # noqa: F401 -- a fixture
from tests.catalogue.test_routing_console import routing_url
from tests.portal.factories import UserFactory, token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("platform")]


def noisy_lines() -> list[str]:
    """80 lines: cheap-llama is right on most SQL and few poems, premium-gpt4 on 90% of all (seeded)."""
    rng = random.Random(2)
    lines = []
    for n in range(80):
        topic, cheap_right = rng.choice([("sql query", 0.9), ("tax form", 0.6), ("sonnet poem", 0.2)])
        scores = {"cheap-llama": int(rng.random() < cheap_right), "premium-gpt4": int(rng.random() < 0.9)}
        lines.append(json.dumps({"prompt": f"Please help with this {topic} number {n}", "scores": scores}))
    return lines


@pytest.fixture
def smart() -> ModelAlias:
    document = routing_catalogue()
    document["aliases"][1]["routing"] = {"strategy": "learned"}
    import_catalogue(data=document)
    return ModelAlias.objects.get(name="smart")


def stored_validation(router: LearnedRouter) -> learned.CrossValidation:
    return learned.from_bytes(bytes(LearnedRouter.objects.get(pk=router.pk).weights)).cross_validation


def test_rest_shows_the_recommended_point_and_margin_in_the_detail_and_the_list(smart):
    router = services.train_router(alias=smart, lines=noisy_lines())
    validation = stored_validation(router)
    point = validation.recommended
    reader = token_client(UserFactory())

    detail = reader.get(f"/api/v1/catalogue/aliases/{smart.pk}/").json()["learned_model"]["recommended"]
    listed = {a["name"]: a["learned_model"] for a in reader.get("/api/v1/catalogue/aliases/").json()["results"]}

    assert point is not None and validation.margin > 0
    assert detail == {
        "label": point.label,
        "floor": point.floor,
        "trade_off": point.trade_off,
        "quality_share": point.quality_share,
        "cost_share": point.cost_share,
        "best": "premium-gpt4",
        "keep": 0.95,
        "margin": validation.margin,
    }
    assert listed["smart"]["recommended"] == detail


def test_the_page_shows_the_recommended_point_beside_the_learned_model(client, smart):
    router = services.train_router(alias=smart, lines=noisy_lines())
    validation = stored_validation(router)
    point = validation.recommended
    client.force_login(UserFactory(is_superuser=True, is_staff=True))

    page = client.get(routing_url("smart")).content.decode()

    model_line = page[page.index('data-testid="learned-model"') :].split("</dd>", 1)[0]
    shown = model_line[model_line.index('data-testid="learned-recommended"') :]
    assert f"recommended <strong>{point.label}</strong>" in shown
    assert f"{point.quality_share * 100:.1f}% of premium-gpt4's quality" in shown
    assert f"at {point.cost_share * 100:.1f}% of its cost" in shown
    assert f"keep 95.0% of it plus a {validation.margin * 100:.1f}% margin (nested cross-validation)" in shown


def test_a_version_too_small_to_cross_validate_shows_no_recommended_point(client, smart):
    few = [json.dumps({"prompt": f"question {n}", "scores": {"cheap-llama": 1, "premium-gpt4": 1}}) for n in range(4)]
    services.train_router(alias=smart, lines=few)
    client.force_login(UserFactory(is_superuser=True, is_staff=True))

    page = client.get(routing_url("smart")).content.decode()
    learned_model = token_client(UserFactory()).get(f"/api/v1/catalogue/aliases/{smart.pk}/").json()["learned_model"]

    assert learned_model["version"] == 1 and learned_model["recommended"] is None
    assert "no recommended point: too few lines scoring every deployment to cross-validate" in page


def test_the_recommendation_is_read_with_the_version_and_no_query_of_its_own(smart, django_assert_num_queries):
    router = services.train_router(alias=smart, lines=noisy_lines())
    latest = selectors.latest_learned_router(alias=smart)

    with django_assert_num_queries(0):  # from the head learned_versions annotates, not the deferred weights
        recommendation = selectors.learned_recommendation(router=latest)

    assert recommendation.point == stored_validation(router).recommended
    assert recommendation.target == round(0.95 + recommendation.margin, 4)
