"""A minimal OpenID Connect provider (authorization code flow) for loopback sign-in tests.

`/authorize` signs the configured test user in at once and redirects back with a code; `/token` checks the
client and the code and returns an access token plus an RS256 id_token signed with a key made at start.
"""

import base64
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.upstreams.server import Receive, RequestLog, Scope, Send, read_body, send_json


async def send_redirect(send: Send, location: str) -> None:
    await send({"type": "http.response.start", "status": 302, "headers": [(b"location", location.encode())]})
    await send({"type": "http.response.body", "body": b""})


class OIDCProvider:
    """Serve under LoopbackServer, then set `url` to the server's URL: it is the issuer."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        sub: str = "idp-user-1",
        email: str = "sso.user@idp.test",
        name: str = "Sso User",
        email_verified: bool = True,
    ) -> None:
        self.url = ""
        self.client_id, self.client_secret = client_id, client_secret
        self.user = {"sub": sub, "email": email, "email_verified": email_verified, "name": name}
        self.kid = secrets.token_hex(8)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._codes: dict[str, dict[str, str]] = {}  # code -> what /authorize was asked, used once
        self._access_tokens: dict[str, dict[str, Any]] = {}
        self.log = RequestLog()

    def jwk(self) -> dict[str, Any]:
        return {
            **RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True),
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
        }

    def id_token(self, *, audience: str, nonce: str | None) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": audience,
            "sub": self.user["sub"],
            "email": self.user["email"],
            "email_verified": self.user["email_verified"],
            "iat": now,
            "exp": now + 300,
        }
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = await read_body(receive)
        self.log.record(scope, body)
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        handler = {
            "/.well-known/openid-configuration": self._discovery,
            "/authorize": self._authorize,
            "/token": self._token,
            "/userinfo": self._userinfo,
            "/jwks": self._jwks,
        }.get(scope["path"])
        if handler is None:
            await send_json(send, 404, {"error": "not_found"})
            return
        await handler(scope, query, body, send)

    async def _discovery(self, scope, query, body, send) -> None:
        await send_json(
            send,
            200,
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "userinfo_endpoint": f"{self.url}/userinfo",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "scopes_supported": ["openid", "email", "profile"],
            },
        )

    async def _authorize(self, scope, query, body, send) -> None:
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            await send_json(send, 400, {"error": "invalid_request"})
            return
        code = secrets.token_urlsafe(16)
        self._codes[code] = {"redirect_uri": query["redirect_uri"], "nonce": query.get("nonce", "")}
        params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        await send_redirect(send, f"{query['redirect_uri']}?{urlencode(params)}")

    async def _token(self, scope, query, body, send) -> None:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
        if authorization.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if client_id != self.client_id or client_secret != self.client_secret:
            await send_json(send, 401, {"error": "invalid_client"})
            return
        grant = self._codes.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or grant is None:
            await send_json(send, 400, {"error": "invalid_grant"})
            return
        if form.get("redirect_uri") != grant["redirect_uri"]:
            await send_json(send, 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"})
            return
        access_token = secrets.token_urlsafe(24)
        self._access_tokens[access_token] = dict(self.user)
        await send_json(
            send,
            200,
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.id_token(audience=client_id, nonce=grant["nonce"] or None),
            },
        )

    async def _userinfo(self, scope, query, body, send) -> None:
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
        user = self._access_tokens.get(authorization.removeprefix("Bearer "))
        if not authorization.startswith("Bearer ") or user is None:
            await send_json(
                send, 401, {"error": "invalid_token"}, [(b"www-authenticate", b'Bearer error="invalid_token"')]
            )
            return
        await send_json(send, 200, user)

    async def _jwks(self, scope, query, body, send) -> None:
        await send_json(send, 200, {"keys": [self.jwk()]})
