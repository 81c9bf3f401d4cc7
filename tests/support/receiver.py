"""A webhook receiver standing in for the on-call clinician's pager (or an EHR's rest-hook)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int
    got: list[Received] = field(default_factory=list)
    #: Status codes to answer before answering 200 again (retry tests).
    script: deque[int] = field(default_factory=deque)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def fail_next(self, *statuses: int) -> None:
        self.script.extend(statuses)

    def for_screening(self, screening_id: str) -> list[Received]:
        return [r for r in self.got if r.json.get("screening_id") == str(screening_id)]

    async def wait_for(
        self, screening_id: str, *, count: int = 1, timeout: float = 5.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.for_screening(screening_id)
            if len(got) >= count:
                return got
            await asyncio.sleep(0.01)
        return self.for_screening(screening_id)

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        status = self.script.popleft() if self.script else 200
        self.got.append(Received(time.time(), dict(request.headers), body))
        return Response("ok", status_code=status)

    async def start(self) -> None:
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server, self._task = await serve(app, self.port)

    async def stop(self) -> None:
        await shut(self._server, self._task)


async def serve(app: Starlette, port: int) -> tuple[uvicorn.Server, asyncio.Task]:
    """Serve `app` on 127.0.0.1:`port` in this event loop; returns once it listens."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to await
        await asyncio.sleep(0.01)
    return server, task


async def shut(server: uvicorn.Server | None, task: asyncio.Task | None) -> None:
    if server is not None and task is not None:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
