"""A stop that hangs in the app's own end still ends the process, and says what hung."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from deploy.localstack import free_port
from shared import serve as serve_module

APP = textwrap.dedent(
    """
    import asyncio
    from contextlib import asynccontextmanager
    from fastapi import FastAPI

    async def never_ends() -> None:
        await asyncio.Event().wait()

    def create_app() -> FastAPI:
        @asynccontextmanager
        async def lifespan(app):
            yield
            await never_ends()  # a stop that hangs

        app = FastAPI(lifespan=lifespan)

        @app.get("/up")
        def up() -> str:
            return "up"

        return app

    if __name__ == "__main__":
        import sys
        from shared.serve import serve
        from shared.settings import ServiceSettings

        class Settings(ServiceSettings):
            host: str = "127.0.0.1"
            port: int = int(sys.argv[1])

        serve("hanging:create_app", Settings(SHUTDOWN_GRACE_SECONDS=1), service="hanging")
    """
)


def test_a_stop_that_hangs_exits_after_its_deadline_naming_what_hung(tmp_path: Path) -> None:
    (tmp_path / "hanging.py").write_text(APP)
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "hanging.py"), str(port)],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{tmp_path}:{root}", "PATH": "/usr/bin:/bin", "LOG_FORMAT": "text"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/up", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = proc.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    out = ""
    if proc.stdout is not None:
        out = proc.stdout.read().decode()
        proc.stdout.close()
    assert code == 1, out
    assert 10 <= took < 20, f"1 s of grace and 10 s more, then out: took {took:.1f} s"
    assert "the stop did not finish" in out and "lifespan" in out, out


async def test_the_server_loop_ticks_rarely_but_wakes_at_once_to_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loop's tick is long (a minute here), yet a stop signal ends it at once, and one with
    a delay ends it when the delay is over: never a tick later."""
    monkeypatch.setattr(serve_module, "TICK_SECONDS", 60.0)
    monkeypatch.setattr(serve_module, "_exit_after", lambda seconds, loop: None)
    for delay in (0.0, 0.3):
        monkeypatch.setattr(serve_module.STOPPING, "is_set", lambda: False)
        server = serve_module.GentleServer(
            uvicorn.Config("x:y", timeout_graceful_shutdown=1), delay_seconds=delay
        )
        task = asyncio.create_task(server.main_loop())
        await asyncio.sleep(0.2)
        assert not task.done()
        started = time.monotonic()
        server.handle_exit(signal.SIGTERM, None)
        await asyncio.wait_for(task, timeout=10)
        assert time.monotonic() - started >= delay
