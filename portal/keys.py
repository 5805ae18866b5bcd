"""The API key format: `sk-tw-` + 8-char public id + 32-char secret + 6-char checksum, all base62.

The checksum (CRC32 of everything before it) lets a scanner recognise a leaked Tollway key offline without
asking us. The prefix (`sk-tw-` + public id) is what we show and log; the stored hash is HMAC-SHA-256 of the
whole key with a server-side pepper, so a database dump alone cannot be used to mint or verify keys.
"""

import hashlib
import hmac
import secrets
import zlib

KEY_PREFIX = "sk-tw-"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PUBLIC_ID_LEN, _SECRET_LEN, _CHECKSUM_LEN = 8, 32, 6
KEY_LENGTH = len(KEY_PREFIX) + _PUBLIC_ID_LEN + _SECRET_LEN + _CHECKSUM_LEN
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + _PUBLIC_ID_LEN


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        digits.append(_ALPHABET[remainder])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECKSUM_LEN)


def generate_key() -> str:
    body = KEY_PREFIX + _random_base62(_PUBLIC_ID_LEN) + _random_base62(_SECRET_LEN)
    return body + _checksum(body)


def has_valid_checksum(key: str) -> bool:
    """True for a well-formed Tollway key, checkable offline (e.g. by a secret scanner)."""
    if len(key) != KEY_LENGTH or not key.startswith(KEY_PREFIX):
        return False
    body, checksum = key[:-_CHECKSUM_LEN], key[-_CHECKSUM_LEN:]
    return hmac.compare_digest(_checksum(body), checksum)


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]


def hash_key(key: str, *, pepper: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()
