"""The clinician's pager, for the benchmark: records when each signed page arrives.

It runs as a process of its own (`python -m bench.receiver`), so its clock readings are not
delayed by the load generator's event loop, and it is as lean as an ASGI app can be: no
framework, one HMAC check and one small JSON parse per page. Arrival times are
`time.monotonic()`, which on Linux is one clock for every process of the machine, so the load
generator can subtract its own send times from them.

Routes: `POST /hook` (the webhook), `GET /results` (every page so far, as JSON), `GET /count`,
`GET /healthz`, and for `make chaos` `POST /fault?hang=S&fail=S`: from now on every page waits
`hang` seconds unanswered, then for `fail` seconds more each is answered 500, then all is well
again (a pager gateway that hangs, then errs, then recovers). Only pages answered 200 count.
`POST /v1/traces` takes OTLP spans and drops them (`make bench --trace`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import uvicorn

from shared.serve import GentleServer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


@dataclass(frozen=True)
class Arrival:
    """One page as received: which screening, when, which escalation level, signed or not."""

    screening_id: str
    at: float  # time.monotonic() at arrival
    escalation_level: int
    signature_ok: bool
    event_id: str


def signature_ok(secret: bytes, headers: dict[bytes, bytes], body: bytes) -> bool:
    """The contract's `X-Triage-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`."""
    timestamp = headers.get(b"x-triage-timestamp", b"")
    want = hmac.new(secret, timestamp + b"." + body, hashlib.sha256).hexdigest().encode()
    given = headers.get(b"x-triage-signature", b"")
    return any(hmac.compare_digest(want, part.strip()[3:]) for part in given.split(b","))


class ReceiverApp:
    """A bare ASGI app; pages are kept in memory as tuples until the benchmark asks for them."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()
        self.arrivals: list[tuple[str, float, int, bool, str]] = []
        self.hang_until = 0.0
        self.fail_until = 0.0
        self.refused = 0
        self.span_batches = 0

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        now = time.monotonic()
        path = scope["path"]
        if path == "/hook" and scope["method"] == "POST":
            if now < self.hang_until:
                await asyncio.sleep(self.hang_until - now)  # the sender gives up first
            if time.monotonic() < self.fail_until:
                self.refused += 1
                await _answer(send, 500, b"gateway failing")
                return
            now = time.monotonic()
            body = b"".join(chunks)
            headers = dict(scope["headers"])
            try:
                page = json.loads(body)
                self.arrivals.append(
                    (
                        str(page["screening_id"]),
                        now,
                        int(page.get("escalation_level", 0)),
                        signature_ok(self._secret, headers, body),
                        headers.get(b"x-triage-event-id", b"").decode(),
                    )
                )
            except (ValueError, KeyError, TypeError):
                await _answer(send, 400, b"not a page")
                return
            await _answer(send, 200, b"ok")
        elif path == "/fault" and scope["method"] == "POST":
            query = dict(
                part.split("=", 1) for part in scope["query_string"].decode().split("&") if part
            )
            self.hang_until = now + float(query.get("hang", 0))
            self.fail_until = self.hang_until + float(query.get("fail", 0))
            await _answer(send, 200, b"ok")
        elif path == "/v1/traces" and scope["method"] == "POST":
            # `make bench --trace`: an OTLP/HTTP collector that takes the spans and drops them
            # (an empty body is an empty ExportTraceServiceResponse).
            self.span_batches += 1
            await _answer(send, 200, b"")
        elif path == "/results":  # ?from=N: the arrivals from the Nth on
            query = scope["query_string"].decode()
            start = int(query.removeprefix("from=")) if query.startswith("from=") else 0
            await _answer(send, 200, json.dumps(self.arrivals[start:]).encode())
        elif path == "/count":
            await _answer(send, 200, b"%d" % len(self.arrivals))
        elif path == "/healthz":
            await _answer(send, 200, b"ok")
        else:
            await _answer(send, 404, b"no such route")


async def _answer(send: Callable[[Message], Awaitable[None]], status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


def parse_results(raw: bytes) -> list[Arrival]:
    return [Arrival(*row) for row in json.loads(raw)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.receiver", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args(argv)
    config = uvicorn.Config(
        ReceiverApp(args.secret),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    # The services' server: its own loop wakes once a second, not ten times (bench.idle
    # counts the receiver with the stack it stands beside).
    GentleServer(config, delay_seconds=0).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
