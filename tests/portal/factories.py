import factory
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from portal.models import Membership, Product, Subscription
from tests.factories import TeamFactory, TenantFactory

PASSWORD = "correct-horse-battery-7"


class UserFactory(factory.django.DjangoModelFactory):
    """A user who can sign in: username = email, password PASSWORD, email address verified."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    username = factory.SelfAttribute("email")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified(user, create, extracted, **kwargs):
        user.save()
        if create and extracted is not False:
            EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    team = factory.SubFactory(TeamFactory)
    tenant = factory.LazyAttribute(lambda m: m.team.tenant if m.team else TenantFactory())
    role = Membership.Role.MEMBER


class ProductFactory(factory.django.DjangoModelFactory):
    """A platform product (no tenant) unless given one."""

    class Meta:
        model = Product
        skip_postgeneration_save = True

    tenant = None
    name = factory.Sequence(lambda n: f"Product {n}")
    requires_approval = True

    @factory.post_generation
    def aliases(product, create, extracted, **kwargs):
        if create and extracted:
            product.aliases.set(extracted)


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    team = factory.SubFactory(TeamFactory)
    product = factory.SubFactory(ProductFactory)
    status = Subscription.Status.PENDING
    purpose = "a checkout assistant"


def token_client(user=None, **client_options):
    """An APIClient signed in with the user's DRF token (anonymous for None)."""
    client = APIClient(**client_options)
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client
