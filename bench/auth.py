"""`python -m bench.auth`: the CPU the gate costs per request, measured, not assumed.

Times `Gate.authenticate` for an API key among 10,000 known ones (the digest and the lookup), and
the whole guarded route around an empty endpoint (table lookup, role check, write limit), against
the same route without the gate. Prints microseconds per request; no stack is needed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AsyncExitStack

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request

from shared.auth import Access, Permission, Role, guarded
from shared.auth.credentials import Credential, key_digest, new_key
from shared.auth.directory import CredentialDirectory
from shared.auth.guard import Gate
from shared.auth.ratelimit import RateLimits

N = 20_000


def _request(app: FastAPI, key: str, method: str = "POST", path: str = "/v1/x") -> Request:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {key}".encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8001),
        "scheme": "http",
        "root_path": "",
        "app": app,
        # what FastAPI's own middleware puts in the scope before a route runs
        "fastapi_middleware_astack": AsyncExitStack(),
        "fastapi_inner_astack": AsyncExitStack(),
        "fastapi_function_astack": AsyncExitStack(),
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    return Request(scope, receive)


class _Runtime:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate


async def _per_call(fn, n: int = N) -> float:
    for _ in range(500):
        await fn()
    t0 = time.process_time()
    for _ in range(n):
        await fn()
    return (time.process_time() - t0) / n * 1e6


async def main() -> None:
    keys = [new_key() for _ in range(10_000)]
    directory = CredentialDirectory(
        bootstrap=[
            Credential(id=uuid.uuid4(), name=f"k{i}", role=Role.HOTLINE, key_hash=key_digest(k))
            for i, k in enumerate(keys)
        ]
    )
    directory.mark_synced(time.monotonic() + 3600)
    gate = Gate(
        directory=directory,
        limits=RateLimits(writes={"hotline": "1000000/minute"}, failed_auth="10/minute"),
    )
    table = {("POST", "/v1/x"): Access(Permission.SCREENINGS_SUBMIT)}

    async def endpoint() -> None:
        return None

    app = FastAPI()
    app.state.runtime = _Runtime(gate)
    plain = APIRoute("/v1/x", endpoint, methods=["POST"]).get_route_handler()
    router = APIRouter(route_class=guarded(table))
    router.add_api_route("/v1/x", endpoint, methods=["POST"])
    guarded_handler = router.routes[0].get_route_handler()  # type: ignore[attr-defined]
    key = keys[4711]

    auth = await _per_call(lambda: gate.authenticate(_request(app, key)))
    bare = await _per_call(lambda: plain(_request(app, key)))
    full = await _per_call(lambda: guarded_handler(_request(app, key)))
    print(f"Gate.authenticate (API key among 10,000): {auth:6.1f} us CPU per request")
    print(f"empty route without the gate:             {bare:6.1f} us")
    print(f"empty route with the gate:                {full:6.1f} us  (gate: {full - bare:.1f} us)")


if __name__ == "__main__":
    asyncio.run(main())
