import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError

from routing.catalogue import rotate_credentials
from routing.credentials import CredentialError, decrypt_secret, encrypt_secret
from routing.models import Provider


def new_key() -> str:
    return Fernet.generate_key().decode()


def make_provider(name: str, *, api_key: str = "") -> Provider:
    return Provider.objects.create(
        name=name,
        kind="openai",
        base_url="http://127.0.0.1:9101/v1",
        api_key_encrypted=encrypt_secret(api_key) if api_key else "",
    )


@pytest.mark.django_db
def test_rotation_moves_every_key_to_the_newest_fernet_key(settings):
    key_a, key_b = new_key(), new_key()
    settings.TOLLWAY_FERNET_KEYS = [key_a]
    make_provider("first", api_key="sk-first")
    make_provider("second", api_key="sk-second")
    settings.TOLLWAY_FERNET_KEYS = [key_b, key_a]

    count = rotate_credentials()

    assert count == 2
    settings.TOLLWAY_FERNET_KEYS = [key_b]
    assert decrypt_secret(Provider.objects.get(name="first").api_key_encrypted) == "sk-first"
    assert decrypt_secret(Provider.objects.get(name="second").api_key_encrypted) == "sk-second"
    settings.TOLLWAY_FERNET_KEYS = [key_a]
    with pytest.raises(CredentialError):
        decrypt_secret(Provider.objects.get(name="first").api_key_encrypted)


@pytest.mark.django_db
def test_rotation_skips_providers_without_a_stored_key(settings):
    settings.TOLLWAY_FERNET_KEYS = [new_key()]
    make_provider("with-key", api_key="sk-1")
    make_provider("without-key")

    assert rotate_credentials() == 1
    assert Provider.objects.get(name="without-key").api_key_encrypted == ""


@pytest.mark.django_db
def test_a_key_no_configured_fernet_key_can_read_stops_the_rotation_and_changes_nothing(settings):
    key_a, key_b, lost = new_key(), new_key(), new_key()
    settings.TOLLWAY_FERNET_KEYS = [key_a]
    make_provider("a-readable", api_key="sk-readable")
    settings.TOLLWAY_FERNET_KEYS = [lost]
    make_provider("b-unreadable", api_key="sk-lost")
    before = dict(Provider.objects.values_list("name", "api_key_encrypted"))
    settings.TOLLWAY_FERNET_KEYS = [key_b, key_a]

    with pytest.raises(CredentialError, match="b-unreadable"):
        rotate_credentials()

    assert dict(Provider.objects.values_list("name", "api_key_encrypted")) == before


@pytest.mark.django_db
def test_the_command_reports_how_many_keys_it_re_encrypted(settings):
    key_a, key_b = new_key(), new_key()
    settings.TOLLWAY_FERNET_KEYS = [key_a]
    make_provider("only", api_key="sk-only")
    settings.TOLLWAY_FERNET_KEYS = [key_b, key_a]
    out = io.StringIO()

    call_command("rotate_credentials", stdout=out)

    assert out.getvalue().strip() == "re-encrypted 1 provider key(s) under the newest Fernet key"
    settings.TOLLWAY_FERNET_KEYS = [key_b]
    assert decrypt_secret(Provider.objects.get(name="only").api_key_encrypted) == "sk-only"


@pytest.mark.django_db
def test_the_command_fails_when_a_key_cannot_be_decrypted(settings):
    settings.TOLLWAY_FERNET_KEYS = [new_key()]
    make_provider("orphan", api_key="sk-orphan")
    settings.TOLLWAY_FERNET_KEYS = [new_key()]

    with pytest.raises(CommandError, match="orphan.*nothing was re-encrypted"):
        call_command("rotate_credentials", stdout=io.StringIO())
