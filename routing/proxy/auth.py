"""Bearer key -> Principal, from the in-memory snapshot. No database, no I/O: it runs on the event loop."""

import hmac
import time

from django.conf import settings
from rest_framework.authentication import BaseAuthentication

from portal.keys import DISPLAY_PREFIX_LENGTH, KEY_LENGTH, KEY_PREFIX, hash_key
from routing.engine import snapshot
from routing.engine.snapshot import Principal
from routing.proxy.errors import InvalidApiKey

_MISSING = "Missing API key. Send it as 'Authorization: Bearer sk-tw-...'."
_INVALID = "Incorrect API key provided."


def bearer_from_headers(authorization: str, x_api_key: str) -> str:
    # The anthropic SDK sends its key as x-api-key; the openai SDK as a bearer token.
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return x_api_key.strip()


def principal_for(key: str, *, now: float | None = None) -> Principal:
    if not key:
        raise InvalidApiKey(_MISSING)
    if len(key) != KEY_LENGTH or not key.startswith(KEY_PREFIX):
        raise InvalidApiKey(_INVALID)
    principal = snapshot.current().keys_by_prefix.get(key[:DISPLAY_PREFIX_LENGTH])
    # The stored hash is compared, never accepted: presenting the hash itself fails like any wrong key.
    if principal is None or not hmac.compare_digest(
        principal.secret_hash, hash_key(key, pepper=settings.TOLLWAY_KEY_PEPPER)
    ):
        raise InvalidApiKey(_INVALID)
    if principal.is_revoked:
        raise InvalidApiKey("This API key has been revoked.", code="api_key_revoked")
    if principal.expires_at is not None and (now or time.time()) >= principal.expires_at:
        raise InvalidApiKey("This API key has expired.", code="api_key_expired")
    return principal


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        meta = request._request.META
        key = bearer_from_headers(meta.get("HTTP_AUTHORIZATION", ""), meta.get("HTTP_X_API_KEY", ""))
        principal = principal_for(key)
        return (None, principal)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="tollway"'
