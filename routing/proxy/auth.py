"""Bearer key -> Principal. A key in this process's memory costs no I/O; one that is not is looked up once by its
hash on the control-plane thread (routing/control_plane/keys.py), so the event loop never blocks on it."""

import hmac
import logging
import time

from django.conf import settings
from rest_framework.authentication import BaseAuthentication

from core.errors import InvalidApiKey, KeysUnavailable, RateLimited
from core.values import Principal
from portal.keys import DISPLAY_PREFIX_LENGTH, has_valid_checksum, hash_key
from routing.control_plane import refresher
from routing.control_plane.keys import LookupsThrottled

_MISSING = "Missing API key. Send it as 'Authorization: Bearer sk-tw-...'."
_INVALID = "Incorrect API key provided."
PRINCIPAL = "tollway.principal"  # where the view's request META carries the resolved principal
log = logging.getLogger(__name__)
_said_unavailable_at = float("-inf")


def bearer_from_headers(authorization: str, x_api_key: str) -> str:
    # The anthropic SDK sends its key as x-api-key; the openai SDK as a bearer token.
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return x_api_key.strip()


async def principal_for(key: str, *, now: float | None = None) -> Principal:
    if not key:
        raise InvalidApiKey(_MISSING)
    # The checksum is checked offline: a mistyped or made-up key never costs a lookup.
    if not has_valid_checksum(key):
        raise InvalidApiKey(_INVALID)
    secret_hash = hash_key(key, pepper=settings.TOLLWAY_KEY_PEPPER)
    try:
        principal = await refresher.keys().principal(key[:DISPLAY_PREFIX_LENGTH], secret_hash)
    except LookupsThrottled:
        raise RateLimited(
            "Too many unknown API keys are being tried; retry shortly.", retry_after_s=1, code="key_lookups_throttled"
        ) from None
    except InvalidApiKey:
        raise
    except Exception as exc:
        _say_unavailable(exc)
        raise KeysUnavailable("API keys cannot be checked right now; retry shortly.") from None
    # The stored hash is compared, never accepted: presenting the hash itself fails like any wrong key.
    if principal is None or not hmac.compare_digest(principal.secret_hash, secret_hash):
        raise InvalidApiKey(_INVALID)
    if principal.is_revoked:
        raise InvalidApiKey("This API key has been revoked.", code="api_key_revoked")
    if principal.expires_at is not None and (now or time.time()) >= principal.expires_at:
        raise InvalidApiKey("This API key has expired.", code="api_key_expired")
    return principal


def _say_unavailable(exc: Exception) -> None:
    # Once a minute at most: an outage would otherwise log every call of every key not yet in memory.
    global _said_unavailable_at
    now = time.monotonic()
    if now - _said_unavailable_at >= 60:
        _said_unavailable_at = now
        log.warning("a key not in memory could not be looked up (%s); such calls answer 503", type(exc).__name__)


async def authenticate(meta: dict) -> None:
    """Resolve the caller's key before DRF's (synchronous) authentication reads it from META."""
    key = bearer_from_headers(meta.get("HTTP_AUTHORIZATION", ""), meta.get("HTTP_X_API_KEY", ""))
    meta[PRINCIPAL] = await principal_for(key)


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        return (None, request._request.META[PRINCIPAL])

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="tollway"'
