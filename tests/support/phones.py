"""The bundled Twilio stand-in (deploy/phones) as a real process, the clinicians' phones of the
tests: notify texts and calls them through Twilio's REST API, and the tests reply, answer and
press keys through its /_local/ API, which sends notify Twilio's signed webhooks."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
#: The provider's number: what notify texts and calls from (TWILIO_FROM_NUMBER).
PROVIDER_NUMBER = "+15555550100"


@dataclass
class Phones:
    port: int
    #: Where a phone's text to the provider number goes (notify's /v1/twilio/sms).
    sms_url: str
    log: Path
    account_sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notify_env(self) -> dict[str, str]:
        """Notify's settings for this provider, as for a real Twilio account."""
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_API_BASE": self.url,
            "TWILIO_FROM_NUMBER": PROVIDER_NUMBER,
        }

    def start(self, timeout: float = 30.0) -> None:
        env = {
            "PATH": __import__("os").environ["PATH"],
            "PHONES_PORT": str(self.port),
            "PHONES_ACCOUNT_SID": self.account_sid,
            "PHONES_AUTH_TOKEN": self.auth_token,
            "PHONES_SMS_URL": self.sms_url,
            "PHONES_NUMBER": PROVIDER_NUMBER,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "deploy.phones"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the phones exited:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/_local/phones", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the phones did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            response = await client.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    async def phone(self, number: str) -> dict[str, Any]:
        """What the phone got: {"messages": [...], "calls": [...]}, newest first."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            response = await client.get(f"/_local/phones/{number}")
        if response.status_code == 404:
            return {"number": number, "messages": [], "calls": []}
        response.raise_for_status()
        return dict(response.json())

    async def texts(self, number: str) -> list[dict[str, Any]]:
        """The texts notify sent the phone through the REST API (pages), oldest first."""
        phone = await self.phone(number)
        return [m for m in reversed(phone["messages"]) if m.get("direction") == "outbound-api"]

    async def answers(self, number: str) -> list[str]:
        """The bodies of notify's TwiML answers to the phone's replies, oldest first."""
        phone = await self.phone(number)
        return [
            m["body"] for m in reversed(phone["messages"]) if m.get("direction") == "outbound-reply"
        ]

    async def calls(self, number: str) -> list[dict[str, Any]]:
        return list(reversed((await self.phone(number))["calls"]))

    async def reply(self, number: str, body: str) -> dict[str, Any]:
        """The phone texts `body` back; returns the inbound message with notify's answer."""
        result: dict[str, Any] = await self._call(
            "POST", f"/_local/phones/{number}/reply", json={"Body": body}
        )
        return result

    async def call_action(self, sid: str, action: str, **body: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "POST", f"/_local/calls/{sid}/{action}", json=body or None
        )
        return result

    async def unreachable(self, number: str, value: bool = True) -> None:
        await self._call(
            "POST", f"/_local/phones/{number}/unreachable", json={"unreachable": value}
        )

    async def wait_for_text(
        self, number: str, *, count: int = 1, timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            texts = await self.texts(number)
            if len(texts) >= count:
                return texts
            await asyncio.sleep(0.05)
        raise AssertionError(f"{count} text(s) did not reach the phone in {timeout} s")

    async def wait_for_call(
        self, number: str, *, count: int = 1, timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = await self.calls(number)
            if len(calls) >= count:
                return calls
            await asyncio.sleep(0.05)
        raise AssertionError(f"{count} call(s) did not reach the phone in {timeout} s")
