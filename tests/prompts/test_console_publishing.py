"""Versions and environments in the console: freezing the draft, the diff of each version, publishing, splitting
and rolling back per environment, and the publication history."""

import pytest
from django.urls import reverse

from portal.models import AuditLogEntry
from portal.prompts import selectors, services
from tests.factories import TeamFactory
from tests.prompts.factories import make_prompt, team_owner

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return team_owner(TeamFactory(name="Checkout", tenant__name="Acme"))


@pytest.fixture
def prompt(owner):
    return make_prompt(team=owner.memberships.first().team, owner=owner)


def two_versions(prompt, owner):
    services.create_version(prompt, actor=owner, message="first")
    services.update_draft(prompt, actor=owner, messages=[{"role": "user", "content": "Brief on {{ticker}}."}])
    services.create_version(prompt, actor=owner, message="shorter")


def test_freezing_the_draft_makes_the_next_version_with_its_message(client, owner, prompt):
    client.force_login(owner)

    response = client.post(reverse("console:prompt-versions", args=[prompt.pk]), {"message": "first cut"})

    assert response.status_code == 302
    version = selectors.versions_of(prompt).get()
    assert (version.number, version.message) == (1, "first cut")


def test_freezing_an_unchanged_draft_is_refused_on_the_page(client, owner, prompt):
    services.create_version(prompt, actor=owner)
    client.force_login(owner)

    response = client.post(reverse("console:prompt-versions", args=[prompt.pk]), {"message": "again"})

    assert response.status_code == 200
    assert "nothing to freeze" in response.content.decode()
    assert selectors.versions_of(prompt).count() == 1


def test_the_history_shows_each_versions_diff_line_by_line(client, owner, prompt):
    two_versions(prompt, owner)
    client.force_login(owner)

    page = client.get(reverse("console:prompt-versions", args=[prompt.pk])).content.decode()

    assert 'data-testid="version-2"' in page and 'data-testid="version-1"' in page
    assert '<span class="diff-add">+Brief on {{ticker}}.</span>' in page
    assert '<span class="diff-del">-Summarise {{ticker}} for {{quarter}} in {{words}} words.</span>' in page
    assert "--- message 1 (user)\nBrief on {{ticker}}." in page  # each version's own text, as frozen


def test_publishing_then_rolling_back_serves_the_earlier_version_and_records_both(client, owner, prompt):
    two_versions(prompt, owner)
    client.force_login(owner)
    publish = reverse("console:prompt-publish", args=[prompt.pk])

    client.post(publish, {"environment": "prod", "version": "1"})
    client.post(publish, {"environment": "prod", "version": "2"})
    page = client.get(reverse("console:prompt-publishing", args=[prompt.pk])).content.decode()
    assert "Roll back to v1" in page and "data-confirm=" in page
    response = client.post(reverse("console:prompt-rollback", args=[prompt.pk]), {"environment": "prod"})

    assert response.status_code == 302
    assert selectors.current_publications(prompt) == {"prod": {"1": 100}}
    actions = AuditLogEntry.objects.filter(target_id=str(prompt.pk)).values_list("action", flat=True)
    assert {"prompt.published", "prompt.rolled_back"} <= set(actions)
    history = client.get(reverse("console:prompt-publishing", args=[prompt.pk])).context["environments"]
    prod = next(environment for environment in history if environment["name"] == "prod")
    assert prod["serving"] == "v1"
    assert [row.action for row in prod["history"]] == ["rolled_back", "published", "published"]


def test_a_split_serves_two_versions_by_percentage(client, owner, prompt):
    two_versions(prompt, owner)
    client.force_login(owner)

    client.post(
        reverse("console:prompt-split", args=[prompt.pk]),
        {"environment": "staging", "version": "1", "other_version": "2", "other_percent": "10"},
    )
    page = client.get(reverse("console:prompt-publishing", args=[prompt.pk])).content.decode()

    assert selectors.current_publications(prompt) == {"staging": {"1": 90, "2": 10}}
    assert "v1 90% · v2 10%" in page


@pytest.mark.parametrize(
    ("url_name", "form", "message"),
    [
        ("console:prompt-publish", {"environment": "moon", "version": "1"}, "no environment"),
        ("console:prompt-publish", {"environment": "prod", "version": "9"}, "has no version 9"),
        (
            "console:prompt-split",
            {"environment": "prod", "version": "1", "other_version": "1", "other_percent": "5"},
            "",
        ),
        (
            "console:prompt-split",
            {"environment": "prod", "version": "1", "other_version": "2", "other_percent": "x"},
            "",
        ),
        ("console:prompt-rollback", {"environment": "prod"}, "nothing is published in prod"),
    ],
    ids=["unknown-environment", "unknown-version", "same-version-twice", "not-a-percentage", "nothing-to-roll-back"],
)
def test_refused_publications_say_why_and_change_nothing(client, owner, prompt, url_name, form, message):
    two_versions(prompt, owner)
    client.force_login(owner)

    response = client.post(reverse(url_name, args=[prompt.pk]), form, follow=True)

    flashes = [str(flash) for flash in response.context["messages"]]
    assert len(flashes) == 1 and message in flashes[0]
    assert selectors.current_publications(prompt) == {}


def test_a_tenant_admin_adds_an_environment_that_every_prompt_then_offers(client, prompt):
    from portal.models import Membership
    from tests.portal.factories import MembershipFactory

    admin = MembershipFactory(team=None, tenant=prompt.tenant, role=Membership.Role.TENANT_ADMIN).user
    client.force_login(admin)

    client.post(reverse("console:prompt-environment-add", args=[prompt.pk]), {"name": "Canary"})
    page = client.get(reverse("console:prompt-publishing", args=[prompt.pk])).content.decode()

    assert 'data-testid="environment-canary"' in page
    assert AuditLogEntry.objects.filter(action="prompt.environment_added").exists()


def test_the_list_shows_what_each_environment_serves(client, owner, prompt):
    two_versions(prompt, owner)
    services.publish(prompt, actor=owner, environment="prod", version=2)
    client.force_login(owner)

    page = client.get(reverse("console:prompts")).content.decode()

    assert 'data-testid="prompt-row-ticker-summary"' in page and "prod: v2" in page
    assert 'data-testid="new-prompt"' in page
