"""Receivers that never finish answering: one drips a byte a second, one sends an endless body.

Raw asyncio servers (no framework would answer this badly): they count their connections, how
many are open at once, and how much of the endless body went out before the sender hung up.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class SlowServer:
    port: int
    #: "drip": the status line, one byte a second, for ever; "endless": a 200 with a body of
    #: a terabyte, sent as fast as the reader takes it (up to `cap` bytes, then silence).
    mode: str = "drip"
    cap: int = 50_000_000
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    #: Body bytes written per closed connection of the endless mode.
    written: list[int] = field(default_factory=list)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        answering: asyncio.Task[int] | None = None
        try:
            await reader.readuntil(b"\r\n\r\n")  # the request's head
            answering = asyncio.create_task(self._answer(writer))
            # Until the sender hangs up (EOF): counted closed the moment it does.
            while await reader.read(65536):
                pass
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            if answering is not None:
                answering.cancel()
                with contextlib.suppress(BaseException):
                    sent = await answering
                    if self.mode != "drip":
                        self.written.append(sent)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter) -> int:
        sent = 0
        try:
            if self.mode == "drip":
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" * 1000:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(1)
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n")
                chunk = b"x" * 65536
                while sent < self.cap:
                    writer.write(chunk)
                    await writer.drain()
                    sent += len(chunk)
                    await asyncio.sleep(0.01)
                await asyncio.sleep(3600)
        except (OSError, asyncio.CancelledError):
            pass
        return sent
