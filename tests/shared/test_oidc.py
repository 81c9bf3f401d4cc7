"""Access tokens from the clinic's identity provider, verified against its published keys."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from shared.auth.oidc import InvalidToken, OidcVerifier
from shared.auth.roles import Role
from tests.support.idp import AUDIENCE, IdentityProvider, running_idp


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    async with running_idp() as provider:
        yield provider


@pytest.fixture
async def verifier(idp: IdentityProvider) -> AsyncIterator[OidcVerifier]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield OidcVerifier(
            issuer=idp.issuer,
            audience=AUDIENCE,
            roles_claim="realm_access.roles",
            refresh_seconds=1,
            http=http,
        )


async def test_a_good_token_is_its_subject_in_its_role(
    idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    kid = idp.published[0]
    es = idp.add_key("ES256")
    principal = await verifier.principal(idp.token(kid, sub="dr-ruiz"))
    assert (principal.name, principal.role, principal.credential_id) == (
        "dr-ruiz",
        Role.CLINICIAN,
        "oidc:dr-ruiz",
    )
    ehr = await verifier.principal(
        idp.token(es, realm_access={"roles": ["ehr"]}, identifier_systems=["urn:example:ehr"])
    )
    assert ehr.role == Role.EHR and ehr.identifier_systems == ("urn:example:ehr",)


#: Times are seconds from when the test runs (not from collection: a long suite runs this
#: one many minutes after it was collected).
_EXP, _NBF = "exp_in", "nbf_in"


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({_EXP: -120}, "ExpiredSignature"),
        ({"aud": "another-api"}, "InvalidAudience"),
        ({"iss": "http://127.0.0.1:1/realms/evil"}, "InvalidIssuer"),
        ({_NBF: 600}, "ImmatureSignature"),
        ({"realm_access": {"roles": ["patient"]}}, "names no role"),
        ({"realm_access": {"roles": ["ehr"]}}, "identifier systems"),
    ],
)
async def test_refused_claims(
    idp: IdentityProvider, verifier: OidcVerifier, claims: dict, why: str
) -> None:
    now = int(time.time())
    claims = {
        {_EXP: "exp", _NBF: "nbf"}.get(name, name): now + value if name in (_EXP, _NBF) else value
        for name, value in claims.items()
    }
    with pytest.raises(InvalidToken, match=why):
        await verifier.principal(idp.token(idp.published[0], **claims))


async def test_sixty_seconds_of_leeway(idp: IdentityProvider, verifier: OidcVerifier) -> None:
    token = idp.token(idp.published[0], exp=int(time.time()) - 30)
    assert (await verifier.principal(token)).role == Role.CLINICIAN


def _unsigned(claims: dict, header: dict) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


async def test_alg_none_is_refused(idp: IdentityProvider, verifier: OidcVerifier) -> None:
    claims = jwt.decode(idp.token(idp.published[0]), options={"verify_signature": False})
    with pytest.raises(InvalidToken, match="'none'"):
        await verifier.principal(_unsigned(claims, {"alg": "none", "typ": "JWT"}))


async def test_hs256_signed_with_the_public_key_is_refused(
    idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    """The classic confusion: the RSA public key (which anyone can fetch) as an HMAC secret."""
    kid = idp.published[0]
    claims = jwt.decode(idp.token(kid), options={"verify_signature": False})
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = _unsigned(claims, header)[:-1].encode()
    import hashlib
    import hmac

    mac = hmac.new(idp.public_pem(kid), signing_input, hashlib.sha256).digest()
    forged = signing_input.decode() + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="HS256"):
        await verifier.principal(forged)


async def test_an_unknown_kid_refetches_the_keys_at_most_once_a_period(
    idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    await verifier.principal(idp.token(idp.published[0]))
    assert idp.jwks_fetches == 1
    rotated = idp.add_key("RS256")  # the provider rotates: a new key, published
    await asyncio.sleep(1.1)  # past refresh_seconds
    assert (await verifier.principal(idp.token(rotated))).role == Role.CLINICIAN
    assert idp.jwks_fetches == 2
    unknown = idp.add_key("RS256", publish=False)  # forged tokens with made-up kids
    for _ in range(5):
        with pytest.raises(InvalidToken, match="signing key"):
            await verifier.principal(idp.token(unknown))
    assert idp.jwks_fetches == 2, "a flood of unknown kids must not become a flood of fetches"


async def test_a_token_signed_by_another_key_is_refused(
    idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    kid = idp.published[0]
    impostor = IdentityProvider(port=0)
    other = impostor.add_key("RS256")
    impostor.keys[kid] = impostor.keys.pop(other)  # same kid, another private key
    impostor.port = idp.port
    with pytest.raises(InvalidToken, match="InvalidSignature"):
        await verifier.principal(impostor.token(kid))
