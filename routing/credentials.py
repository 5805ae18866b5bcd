"""Provider credentials, encrypted at rest with MultiFernet.

Keys come from TOLLWAY_FERNET_KEYS, newest first. To rotate: put a new key first, keep the old ones after it,
run `python manage.py rotate_credentials` (re-encrypts every credential with the newest key), then drop the old.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class CredentialError(Exception):
    pass


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in settings.TOLLWAY_FERNET_KEYS])


def encrypt_secret(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt_secret(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise CredentialError("a provider credential cannot be decrypted with any configured Fernet key") from None


def reencrypt_secret(token: str) -> str:
    """The same secret under the newest key."""
    if not token:
        return ""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise CredentialError("a provider credential cannot be decrypted with any configured Fernet key") from None
