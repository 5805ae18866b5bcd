from decimal import Decimal

import pytest
from django.urls import reverse

from portal.models import AuditLogEntry, Notification, Subscription
from tests.factories import DeploymentFactory, ProviderFactory, make_alias
from tests.portal.factories import ProductFactory, UserFactory
from tests.portal.test_console_world import build_world

CATALOGUE = "/console/catalogue/"


@pytest.fixture
def world(db):
    return build_world()


def test_the_catalogue_shows_prices_per_million_context_windows_and_aliases_but_no_credentials(client, world):
    provider = ProviderFactory(name="openai-prod", base_url="https://internal-proxy.acme.test/v1")
    deployment = DeploymentFactory(
        name="gpt-4o-mini-eu",
        provider=provider,
        input_per_1m=Decimal("0.15"),
        output_per_1m=Decimal("0.6"),
        cached_input_per_1m=Decimal("0.075"),
        context_window=128000,
    )
    make_alias("gpt-4o-mini", deployment)
    client.force_login(world.users["member"])

    page = client.get(CATALOGUE).content.decode()

    assert "gpt-4o-mini-eu" in page and "openai-prod" in page
    assert "$0.15" in page and "$0.60" in page and "$0.075" in page
    assert "128,000" in page
    assert "<code>gpt-4o-mini</code>" in page
    assert provider.api_key_encrypted not in page and "internal-proxy" not in page


def test_products_of_the_platform_and_of_the_users_tenant_are_offered_but_not_another_tenants(client, world):
    platform_product = ProductFactory(name="Platform GPT")
    client.force_login(world.users["team_owner"])

    page = client.get(CATALOGUE).content.decode()

    assert f'data-testid="request-access-{platform_product.pk}"' in page
    assert f'data-testid="request-access-{world.vision.pk}"' in page
    assert "Rival chat" not in page
    assert "Pending approval" in page  # Checkout already asked for Chat


def test_members_see_products_without_a_request_button(client, world):
    client.force_login(world.users["member"])

    page = client.get(CATALOGUE).content.decode()

    assert "Vision" in page and f'data-testid="request-access-{world.vision.pk}"' not in page


@pytest.mark.django_db
def test_an_empty_catalogue_says_so(client):
    client.force_login(UserFactory())

    page = client.get(CATALOGUE).content.decode()

    assert "No API products published yet" in page
    assert "No deployments yet" in page and "No models yet" in page and "No providers yet" in page


def test_requesting_access_creates_a_pending_subscription_audits_it_and_tells_the_admins(client, world):
    owner = world.users["team_owner"]
    client.force_login(owner)
    url = reverse("console:subscribe", args=[world.vision.pk])
    form = client.get(url).context["form"]
    assert list(form.fields["team"].queryset) == [world.team]

    response = client.post(url, {"team": world.team.pk, "purpose": "receipt scanning", "expected_volume": "1M/month"})

    subscription = Subscription.objects.get(product=world.vision)
    assert response.status_code == 302
    assert response.headers["location"] == reverse("console:team", args=[world.team.pk]) + "#subscriptions"
    assert (subscription.status, subscription.purpose, subscription.expected_volume) == (
        Subscription.Status.PENDING,
        "receipt scanning",
        "1M/month",
    )
    assert subscription.requested_by == owner
    assert AuditLogEntry.objects.filter(action="subscription.requested", target_id=str(subscription.pk)).exists()
    assert Notification.objects.filter(user=world.users["tenant_admin"], subject__contains="Vision").exists()


def test_a_product_without_approval_is_active_at_once(client, world):
    world.vision.requires_approval = False
    world.vision.save()
    client.force_login(world.users["team_owner"])

    client.post(reverse("console:subscribe", args=[world.vision.pk]), {"team": world.team.pk, "purpose": "ocr"})

    assert Subscription.objects.get(product=world.vision).status == Subscription.Status.ACTIVE


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        ({"purpose": ""}, "purpose", "This field is required."),
        ({"purpose": "again", "product": "chat"}, "team", "Checkout has this product already (pending approval)."),
    ],
)
def test_a_bad_request_is_refused_beside_its_field(client, world, data, field, error):
    client.force_login(world.users["team_owner"])
    product = world.chat if data.pop("product", None) else world.vision
    before = Subscription.objects.count()

    response = client.post(reverse("console:subscribe", args=[product.pk]), {"team": world.team.pk, **data})

    assert response.status_code == 200
    assert response.context["form"].errors == {field: [error]}
    page = response.content.decode()
    assert f'<p class="field-error" id="id_{field}_error" role="alert">{error}' in page
    assert Subscription.objects.count() == before


def test_a_team_the_user_does_not_manage_cannot_be_chosen(client, world):
    client.force_login(world.users["team_owner"])

    response = client.post(
        reverse("console:subscribe", args=[world.vision.pk]), {"team": world.other_team.pk, "purpose": "x"}
    )

    assert "team" in response.context["form"].errors
    assert not Subscription.objects.filter(product=world.vision).exists()


def test_an_unpublished_product_cannot_be_requested(client, world):
    world.vision.is_published = False
    world.vision.save()
    client.force_login(world.users["team_owner"])

    assert client.get(reverse("console:subscribe", args=[world.vision.pk])).status_code == 404
