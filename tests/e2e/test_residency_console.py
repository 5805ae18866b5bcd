"""Data residency in a real browser: a team owner limits the team to EU regions with a required tag on its
page, then makes a key that may not widen that and one that narrows it."""

import re

import pytest

from portal.models import APIKey, Membership, Team
from tests.e2e.conftest import screenshot
from tests.factories import TeamFactory
from tests.gateway import start_gateway
from tests.portal.factories import PASSWORD, MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit], form input[type=submit]").last.click()
    page.wait_for_url(re.compile(r".*/console/.*"))


def test_a_team_owner_sets_the_teams_residency_and_makes_a_key_within_it(page):
    team = TeamFactory(name="Checkout", tenant__name="Acme")
    MembershipFactory(team=team, role=Membership.Role.TEAM_OWNER, user__email="owner@acme.test")

    with start_gateway() as gateway:
        base = gateway.url
        sign_in(page, base, "owner@acme.test")

        page.goto(f"{base}/console/teams/{team.pk}/")
        assert page.get_by_test_id("team-regions").inner_text().strip() == "Any region"
        form = page.get_by_test_id("residency-form")
        form.locator("input[name=allowed_regions]").fill("EU, eu-west")
        form.locator("input[name=required_tags]").fill("zero-retention")
        form.locator("button[type=submit]").click()
        page.wait_for_url(re.compile(r".*#residency$"))
        screenshot(page, "residency-01-team")
        assert page.get_by_test_id("team-regions").inner_text().split() == ["eu", "eu-west"]
        assert page.get_by_test_id("team-tags").inner_text().split() == ["zero-retention"]

        page.goto(f"{base}/console/teams/{team.pk}/keys/new/")
        key_form = page.get_by_test_id("new-key-form")
        key_form.locator("input[name=name]").fill("too wide")
        key_form.locator("input[name=allowed_regions]").fill("eu, us")
        key_form.locator("button[type=submit]").click()
        page.wait_for_load_state()
        assert "Not among the team's regions (eu, eu-west): us." in page.locator("#field-allowed_regions").inner_text()
        screenshot(page, "residency-02-key-too-wide")

        key_form = page.get_by_test_id("new-key-form")
        key_form.locator("input[name=name]").fill("eu-west only")
        key_form.locator("input[name=allowed_regions]").fill("eu-west")
        key_form.locator("input[name=required_tags]").fill("hipaa")
        key_form.locator("button[type=submit]").click()
        assert page.get_by_test_id("new-key-secret").inner_text().strip().startswith("sk-tw-")

    assert Team.objects.values_list("allowed_regions", "required_tags").get(pk=team.pk) == (
        ["eu", "eu-west"],
        ["zero-retention"],
    )
    key = APIKey.objects.get()
    assert (key.name, key.allowed_regions, key.required_tags) == ("eu-west only", ["eu-west"], ["hipaa"])
    assert page.console_errors == []
