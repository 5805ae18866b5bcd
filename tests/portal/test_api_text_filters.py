"""Text filters of /api/v1 lists (`audit-log/?action=`) are bounded to their column's length and refuse NUL,
which PostgreSQL cannot compare with text (a DataError, so a 500)."""

import pytest

from tests.portal.factories import UserFactory, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def root():
    return token_client(UserFactory(is_superuser=True, is_staff=True))


@pytest.mark.parametrize("param", ["action", "target_type", "target_id"])
def test_a_text_filter_with_a_nul_answers_400(root, param):
    response = root.get(f"/api/v1/audit-log/?{param}=a%00b")

    assert response.status_code == 400, response.content
    assert list(response.json()) == [param]


@pytest.mark.parametrize("param", ["action", "target_type", "target_id"])
def test_a_text_filter_longer_than_its_column_answers_400(root, param):
    response = root.get(f"/api/v1/audit-log/?{param}={'x' * 65}")

    assert response.status_code == 400, response.content


def test_a_status_filter_must_be_a_status(root):
    assert root.get("/api/v1/subscriptions/?status=bogus").status_code == 400
    assert root.get("/api/v1/subscriptions/?status=pending").status_code == 200
