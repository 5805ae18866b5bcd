import io

import pytest
from django.conf import settings
from django.core.management import call_command

from portal.keys import hash_key
from portal.models import APIKey, Team

pytestmark = pytest.mark.django_db


def test_create_api_key_prints_only_the_secret_and_stores_only_its_hash():
    out = io.StringIO()
    call_command(
        "create_api_key", "--team", "Checkout", "--tenant", "Acme", "--aliases", "a,b", "--name", "ci", stdout=out
    )

    secret = out.getvalue().strip()
    key = APIKey.objects.get()
    assert secret.startswith("sk-tw-") and "\n" not in secret
    assert key.secret_hash == hash_key(secret, pepper=settings.TOLLWAY_KEY_PEPPER)
    assert secret not in str(APIKey.objects.values().get())
    assert key.allowed_aliases == ["a", "b"] and key.name == "ci"
    assert Team.objects.get().tenant.name == "Acme"


def test_create_api_key_reuses_an_existing_team():
    call_command("create_api_key", "--team", "Checkout", stdout=io.StringIO())
    call_command("create_api_key", "--team", "Checkout", stdout=io.StringIO())
    assert Team.objects.count() == 1 and APIKey.objects.count() == 2
