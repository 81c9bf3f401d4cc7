"""A lean HTTP/1.1 client for the load generator: keep-alive connections, one request each.

Why not httpx: on the 2-core benchmark machine one httpx request costs about 1 ms of CPU (its
connection pool, anyio and h11 layers), which at 300 requests/s would take a third of a core
from the system under test. This client writes pre-built request bytes and parses the answer
with httptools (the parser uvicorn uses): about 20 µs per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import httptools

#: Reuse a keep-alive connection only if idle for less than this (uvicorn closes them at 5 s).
MAX_IDLE_SECONDS = 4.0


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `request` sends a whole request and waits for the answer."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._body: list[bytes] = []
        self.reusable = True
        self.idle_since = time.monotonic()

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(ConnectionError("connection closed"))

    # -- httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((self._parser.get_status_code(), b"".join(self._body)))

    # --
    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self._transport is not None
        self._body = []
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw)
        return await self._waiter

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()


class HttpClient:
    """A pool of up to `max_connections` keep-alive connections to one origin.

    A request waits for a free connection when all are busy: that wait is part of its latency,
    as it would be for a real client.
    """

    def __init__(
        self, base_url: str, *, max_connections: int = 256, api_key: str | None = None
    ) -> None:
        parts = urlsplit(base_url)
        self._auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._all: set[_Connection] = set()

    def post_bytes(self, path: str, body: bytes, content_type: str = "application/json") -> bytes:
        """The raw request, built once so the hot loop only writes bytes."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n{self._auth}"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def get_bytes(self, path: str) -> bytes:
        return (
            f"GET {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n{self._auth}\r\n".encode()
        )

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """Send a request built by `post_bytes`; returns (status, body)."""
        async with self._slots:
            conn = self._idle_connection()
            if conn is None:
                conn = await self._connect()
            try:
                result = await conn.request(raw)
            except BaseException:
                conn.close()
                self._all.discard(conn)
                raise
            if conn.reusable:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()
                self._all.discard(conn)
            return result

    def _idle_connection(self) -> _Connection | None:
        """The most recently used idle connection, skipping those the server closed or may be
        closing: uvicorn drops a keep-alive connection idle for 5 s, and a request written
        while its close is on the way fails through no fault of the system under test."""
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable and now - conn.idle_since < MAX_IDLE_SECONDS:
                return conn
            conn.close()
            self._all.discard(conn)
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Connection, self._host, self._port)
        self._all.add(conn)
        return conn

    @property
    def connections(self) -> int:
        return len(self._all)

    async def aclose(self) -> None:
        for conn in self._all:
            with contextlib.suppress(Exception):
                conn.close()
        self._all.clear()
        self._idle.clear()
