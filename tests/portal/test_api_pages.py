"""Lists under /api/v1 come in pages of 50 (`?page=2`). A page number is a whole number from 1: `0`, `-1`,
`last` or `abc` answer 400, a page past the last answers 404, and an empty `?page=` is the first page, as every
empty query parameter is the same as leaving it out (the schema says `allowEmptyValue`)."""

import pytest

from tests.factories import TenantFactory
from tests.portal.factories import UserFactory, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def root():
    return token_client(UserFactory(is_superuser=True, is_staff=True))


@pytest.mark.parametrize("page", ["0", "-1", "last", "abc", "1.0", str(2**31), "9" * 30])
def test_a_page_that_is_not_a_whole_number_from_1_answers_400(root, page):
    response = root.get(f"/api/v1/tenants/?page={page}")

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["page"]


def test_a_page_past_the_last_answers_a_json_404(root):
    TenantFactory()

    response = root.get("/api/v1/tenants/?page=2")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_an_empty_page_is_the_first_page(root):
    TenantFactory(name="Acme")

    response = root.get("/api/v1/tenants/?page=")

    assert response.status_code == 200
    assert [tenant["name"] for tenant in response.json()["results"]] == ["Acme"]


def test_an_empty_filter_filters_nothing(root):
    TenantFactory(name="Acme")

    response = root.get("/api/v1/teams/?tenant=")

    assert response.status_code == 200


def test_the_second_page_has_the_rest(root):
    for n in range(51):
        TenantFactory(name=f"T{n:02}")

    second = root.get("/api/v1/tenants/?page=2").json()

    assert second["count"] == 51 and len(second["results"]) == 1 and second["next"] is None
