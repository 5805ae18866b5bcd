"""Every integer in a /api/v1 URL is checked before it reaches a query: a query filter that no id can match
answers 400, a path id that no row can have answers 404, both as JSON (SQLite raised OverflowError past
2^63 − 1 and PostgreSQL a DataError: a 500 with an HTML page)."""

import pytest

from portal.models import Membership
from tests.factories import TeamFactory
from tests.portal.factories import MembershipFactory, UserFactory, token_client

pytestmark = pytest.mark.django_db

TOO_BIG = str(2**63)  # one past BigAutoField's largest id
HUGE = "9" * 20

FILTERS = [
    ("keys", "team"),
    ("subscriptions", "team"),
    ("subscriptions", "product"),
    ("audit-log", "tenant"),
    ("teams", "tenant"),
]
DETAILS = [
    ("get", "tenants/{id}"),
    ("get", "teams/{id}"),
    ("patch", "teams/{id}"),
    ("get", "teams/{id}/members"),
    ("post", "teams/{id}/members"),
    ("get", "teams/{id}/members/invitations"),
    ("get", "products/{id}"),
    ("get", "subscriptions/{id}"),
    ("patch", "subscriptions/{id}"),
    ("post", "subscriptions/{id}/approve"),
    ("post", "subscriptions/{id}/reject"),
    ("post", "subscriptions/{id}/suspend"),
    ("post", "subscriptions/{id}/resume"),
    ("get", "keys/{id}"),
    ("post", "keys/{id}/revoke"),
    ("post", "keys/{id}/rotate"),
    ("get", "audit-log/{id}"),
    ("get", "budgets/{id}"),
    ("patch", "budgets/{id}"),
    ("get", "catalogue/providers/{id}"),
    ("patch", "catalogue/providers/{id}"),
    ("get", "catalogue/deployments/{id}"),
    ("patch", "catalogue/deployments/{id}"),
    ("get", "catalogue/aliases/{id}"),
    ("patch", "catalogue/aliases/{id}"),
]


@pytest.fixture
def platform_admin():
    return token_client(UserFactory(is_superuser=True, is_staff=True))


@pytest.mark.parametrize(("collection", "param"), FILTERS)
@pytest.mark.parametrize("value", [TOO_BIG, HUGE, "0", "-1", "1.5", "abc"])
def test_a_query_id_no_row_can_have_answers_400_as_json(platform_admin, collection, param, value):
    response = platform_admin.get(f"/api/v1/{collection}/?{param}={value}")

    assert response.status_code == 400, response.content
    assert response["content-type"] == "application/json"
    assert list(response.json()) == [param]


@pytest.mark.parametrize(("collection", "param"), FILTERS)
def test_the_largest_id_is_a_valid_filter_that_matches_nothing(platform_admin, collection, param):
    response = platform_admin.get(f"/api/v1/{collection}/?{param}={2**63 - 1}")

    assert response.status_code == 200, response.content
    assert response.json()["results"] == []


@pytest.mark.parametrize(("method", "path"), DETAILS)
@pytest.mark.parametrize("value", [TOO_BIG, HUGE])
def test_a_path_id_no_row_can_have_answers_404_as_json(platform_admin, method, path, value):
    call = getattr(platform_admin, method)
    response = call("/api/v1/" + path.format(id=value), {}, format="json")

    assert response.status_code == 404, response.content
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_an_anonymous_caller_gets_401_whatever_the_id():
    response = token_client().get(f"/api/v1/keys/{HUGE}/")

    assert response.status_code == 401


def test_a_member_filtering_by_their_own_team_still_finds_its_keys():
    team = TeamFactory()
    member = MembershipFactory(team=team, role=Membership.Role.TEAM_OWNER).user
    token_client(member).post("/api/v1/keys/", {"team": team.pk, "name": "ci"}, format="json")

    listed = token_client(member).get(f"/api/v1/keys/?team={team.pk}")

    assert [key["name"] for key in listed.json()["results"]] == ["ci"]
