"""A local identity provider for the OIDC tests: its own key pairs, a discovery document and a
JWKS on 127.0.0.1, and tokens signed the way Keycloak or Entra ID sign them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from deploy.localstack import free_port
from tests.support.receiver import serve, shut

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
            {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/protocol/openid-connect/certs"}
        )

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
