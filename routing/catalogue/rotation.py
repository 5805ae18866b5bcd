"""Re-encrypting stored provider keys under the newest Fernet key, the middle step of a key rotation."""

from django.db import transaction

from routing.credentials import CredentialError, reencrypt_secret
from routing.models import Provider


@transaction.atomic
def rotate_credentials() -> int:
    """Re-encrypt every stored provider key under the first of TOLLWAY_FERNET_KEYS; returns how many.

    All or nothing: a key that no configured Fernet key can decrypt stops the rotation and rolls back the
    others, so nobody drops an old Fernet key believing every row has moved off it.
    """
    providers = Provider.objects.select_for_update().exclude(api_key_encrypted="").order_by("name")
    count = 0
    for provider in providers:
        try:
            provider.api_key_encrypted = reencrypt_secret(provider.api_key_encrypted)
        except CredentialError:
            raise CredentialError(
                f"provider {provider.name!r}: its key cannot be decrypted with any configured Fernet key"
            ) from None
        # Only the ciphertext changes, not the key, so updated_at stays: the catalogue itself is the same.
        provider.save(update_fields=["api_key_encrypted"])
        count += 1
    return count
