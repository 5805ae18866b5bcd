"""Edges of GET /api/v1/usage/summary that used to answer 500: an OPTIONS call asking for CSV, and a moment
whose offset puts it before year 1 in UTC. Both are JSON answers now."""

import pytest

from tests.portal.factories import UserFactory, token_client

pytestmark = pytest.mark.django_db


def test_options_with_csv_asked_for_describes_the_endpoint_as_json():
    response = token_client(UserFactory()).options("/api/v1/usage/summary/?format=csv")

    assert response.status_code == 200, response.content
    assert response["content-type"] == "application/json"
    assert response.json()["name"]


@pytest.mark.parametrize("param", ["since", "until"])
def test_a_moment_before_year_one_in_utc_answers_400(param):
    response = token_client(UserFactory()).get(f"/api/v1/usage/summary/?{param}=0001-01-01T00:00:00%2B01:00")

    assert response.status_code == 400, response.content
    assert list(response.json()) == [param]


def test_another_tenants_id_answers_a_json_404():
    response = token_client(UserFactory()).get("/api/v1/usage/summary/?tenant=12345")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
