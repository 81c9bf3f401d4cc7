"""A local identity provider for the OIDC tests: its own key pairs, a discovery document and a
JWKS on 127.0.0.1, and tokens signed the way Keycloak or Entra ID sign them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from deploy.localstack import free_port
from tests.support.pagers import serve, shut

AUDIENCE = "crisis-triage"


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(alg)
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid, "alg": alg, "use": "sig"}


@dataclass
class IdentityProvider:
    port: int
    keys: dict[str, tuple[Any, str]] = field(default_factory=dict)  # kid -> (private key, alg)
    published: list[str] = field(default_factory=list)  # kids in the JWKS
    jwks_fetches: int = 0
    #: Who signs in at the authorization endpoint (the stand-in asks nobody anything).
    login_subject: str = "user-1"
    login_roles: tuple[str, ...] = ("clinician",)
    #: Authorization codes given out: code -> (PKCE challenge, redirect_uri).
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/realms/clinic"

    def add_key(self, alg: str = "RS256", *, publish: bool = True) -> str:
        kid = uuid.uuid4().hex[:12]
        private = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.keys[kid] = (private, alg)
        if publish:
            self.published.append(kid)
        return kid

    def token(self, kid: str, *, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        private, alg = self.keys[kid]
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "user-1",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "realm_access": {"roles": ["clinician"]},
            **claims,
        }
        return jwt.encode(body, private, algorithm=alg, headers={"kid": kid, **(headers or {})})

    def public_pem(self, kid: str) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return (
            self.keys[kid][0]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    async def _discovery(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "jwks_uri": f"{self.issuer}/protocol/openid-connect/certs",
                "authorization_endpoint": f"{self.issuer}/protocol/openid-connect/auth",
                "token_endpoint": f"{self.issuer}/protocol/openid-connect/token",
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _authorize(self, request: Request) -> Response:
        """The authorization endpoint of a public client: S256 PKCE required, as Keycloak can
        be told to; the person is `login_subject`, already signed in."""
        query = request.query_params
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            return JSONResponse({"error": "invalid_request"}, 400)
        code = uuid.uuid4().hex
        self.codes[code] = (query["code_challenge"], query["redirect_uri"])
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return RedirectResponse(target, status_code=302)

    async def _token(self, request: Request) -> JSONResponse:
        """Code for token, once, with the verifier whose S256 is the challenge."""
        form = await request.form()
        code = str(form.get("code", ""))
        challenge, redirect_uri = self.codes.pop(code, ("", ""))
        verifier = str(form.get("code_verifier", "")).encode()
        expected = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if (
            not challenge
            or expected.decode() != challenge
            or form.get("redirect_uri") != redirect_uri
            or form.get("grant_type") != "authorization_code"
        ):
            return JSONResponse({"error": "invalid_grant"}, 400)
        token = self.token(
            self.published[0],
            sub=self.login_subject,
            realm_access={"roles": list(self.login_roles)},
        )
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 300})

    async def _jwks(self, request: Request) -> JSONResponse:
        self.jwks_fetches += 1
        return JSONResponse(
            {"keys": [_jwk(self.keys[k][0], k, self.keys[k][1]) for k in self.published]}
        )

    async def start(self) -> None:
        prefix = "/realms/clinic"
        app = Starlette(
            routes=[
                Route(f"{prefix}/.well-known/openid-configuration", self._discovery),
                Route(f"{prefix}/protocol/openid-connect/certs", self._jwks),
                Route(f"{prefix}/protocol/openid-connect/auth", self._authorize),
                Route(f"{prefix}/protocol/openid-connect/token", self._token, methods=["POST"]),
            ]
        )
        self._server, self._task = await serve(app, self.port)

    async def stop(self) -> None:
        await shut(self._server, self._task)


@asynccontextmanager
async def running_idp() -> AsyncIterator[IdentityProvider]:
    """An identity provider on a free port with one RS256 key, for a test's fixture."""
    provider = IdentityProvider(port=free_port())
    provider.add_key("RS256")
    await provider.start()
    try:
        yield provider
    finally:
        await provider.stop()
