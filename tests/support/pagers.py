"""The one webhook receiver of the tests: one local HTTP server, one path per pager.

Clinicians' pagers are `/pager/{name}`; a single webhook (the fallback pager, an EHR's rest-hook:
`tests/support/receiver.py`) is `/{name}`. Each path records what it got (when, headers, body)
and answers from its script: a status, a delay before answering (a page still on the wire) and
extra headers (Retry-After), then 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Got:
    at: float
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers["x-triage-event-id"]


@dataclass
class Pagers:
    port: int
    got: dict[str, list[Got]] = field(default_factory=lambda: defaultdict(list))
    #: Requests a pager is still holding (a page on the wire), per pager.
    holding: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _script: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    _server: uvicorn.Server | None = None
    _task: asyncio.Task | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/pager/{name}"

    def script(self, name: str, *replies: Reply | int) -> None:
        self._script[name].extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def pages(self, name: str, screening_id: str) -> list[Got]:
        return [g for g in self.got[name] if g.json.get("screening_id") == str(screening_id)]

    async def wait_for(
        self, name: str, screening_id: str, *, count: int = 1, timeout: float = 10.0
    ) -> list[Got]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.pages(name, screening_id)
            if len(got) >= count:
                return got
            await asyncio.sleep(0.005)
        raise AssertionError(
            f"pager {name} got {len(self.pages(name, screening_id))} page(s), want {count}"
        )

    async def _page(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        self.got[name].append(Got(time.time(), dict(request.headers), body))
        reply = self._script[name].popleft() if self._script[name] else Reply()
        if reply.delay:
            self.holding[name] += 1
            try:
                await asyncio.sleep(reply.delay)
            finally:
                self.holding[name] -= 1
        return Response("ok", status_code=reply.status, headers=reply.headers)

    async def start(self) -> None:
        routes = [
            Route("/pager/{name}", self._page, methods=["POST"]),
            Route("/{name}", self._page, methods=["POST"]),
        ]
        self._server, self._task = await serve(Starlette(routes=routes), self.port)

    async def stop(self) -> None:
        await shut(self._server, self._task)


async def serve(app: Starlette, port: int, **options: Any) -> tuple[uvicorn.Server, asyncio.Task]:
    """Serve `app` on 127.0.0.1:`port` in this event loop; returns once it listens. `options`
    go to uvicorn's Config (`ssl_certfile` and `ssl_keyfile` for HTTPS)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to await
        await asyncio.sleep(0.01)
    return server, task


async def shut(server: uvicorn.Server | None, task: asyncio.Task | None) -> None:
    if server is not None and task is not None:
        server.should_exit = True
        server.force_exit = True
        with contextlib.suppress(Exception):
            await task
