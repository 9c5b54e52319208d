"""The demo's upstreams: real HTTP servers on 127.0.0.1, each with a scripted fault.

Every upstream is a tiny ASGI app served by uvicorn on a socket we bind ourselves (port 0, so the
port is free and known before anything connects). All of them run on one event loop in one
background thread, so the traffic driver's loop stays the client's alone. The refusing upstream is
a socket that is bound but never listens: on Linux and macOS a connect to it is refused at once
(``ConnectError``), and holding the socket keeps anyone else from taking the port.

The fault of each upstream is a window ``[start, end)`` of seconds since the demo started, given as
fractions of the run's duration, so a 4-second test run and a 20-second show play the same script.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: How long the slow upstream takes to answer while slow. Above the demo policy's
#: ``slow_call_duration`` (0.25 s) and below the client's timeout (1 s): the calls succeed, slowly.
SLOW_DELAY = 0.6


@dataclass(frozen=True)
class Script:
    """What one upstream does: ``fault`` between ``start`` and ``end`` (fractions of the run)."""

    name: str
    fault: str  # "none", "error", "slow", "refuse", "maintenance"
    start: float = 0.0
    end: float | None = None  # None: until the end of the run
    description: str = ""

    def window(self, duration: float) -> tuple[float, float | None] | None:
        """The fault window in seconds since the start, or None for a healthy upstream."""
        if self.fault == "none":
            return None
        return self.start * duration, None if self.end is None else self.end * duration

    def faulty(self, elapsed: float, duration: float) -> bool:
        window = self.window(duration)
        if window is None:
            return False
        start, end = window
        return start <= elapsed and (end is None or elapsed < end)


#: The five upstreams of the demo, in display order.
SCRIPTS: tuple[Script, ...] = (
    Script("healthy", "none", description="always 200"),
    Script("flaky", "error", 0.15, 0.5, "500s for a while, then recovers"),
    Script("slow", "slow", 0.3, None, f"turns slow ({SLOW_DELAY:g}s an answer) for good"),
    Script("refused", "refuse", 0.0, None, "nothing listens: connection refused"),
    Script("maintenance", "maintenance", 0.35, 0.65, "503 with Retry-After, then back"),
)


def retry_after_seconds(duration: float) -> int:
    """The ``Retry-After`` the maintenance upstream sends: 15% of the run, whole seconds."""
    return max(1, round(0.15 * duration))


class UpstreamApp:
    """The ASGI app of one scripted upstream."""

    def __init__(self, script: Script, duration: float, started: float) -> None:
        self.script = script
        self.duration = duration
        self.started = started
        self.hits = 0

    def condition(self, now: float | None = None) -> str:
        """What the upstream is doing at ``now`` (default: at this moment), for the live table."""
        elapsed = (time.monotonic() if now is None else now) - self.started
        if not self.script.faulty(elapsed, self.duration):
            return "ok"
        return {
            "error": "500 errors",
            "slow": f"slow ({SLOW_DELAY:g}s)",
            "refuse": "refusing",
            "maintenance": f"503 RA={retry_after_seconds(self.duration)}s",
        }[self.script.fault]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; anything else is not ours to serve
            return
        self.hits += 1
        elapsed = time.monotonic() - self.started
        status, headers, body = 200, [(b"content-type", b"text/plain")], b"ok\n"
        if self.script.faulty(elapsed, self.duration):
            if self.script.fault == "error":
                status, body = 500, b"internal error\n"
            elif self.script.fault == "slow":
                await asyncio.sleep(SLOW_DELAY)
            elif self.script.fault == "maintenance":
                status, body = 503, b"down for maintenance\n"
                seconds = str(retry_after_seconds(self.duration)).encode()
                headers.append((b"retry-after", seconds))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def bind_loopback() -> socket.socket:
    """A TCP socket bound to a free port on 127.0.0.1 (not yet listening)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


class ServerThread:
    """Serve ASGI apps with uvicorn on 127.0.0.1 free ports, on one loop in one daemon thread.

    ::

        with ServerThread([app_a, app_b]) as servers:
            servers.urls   # ["http://127.0.0.1:40001", "http://127.0.0.1:40002"]

    Start-up and shut-down are bounded by ``timeout`` seconds; a failure to start is raised.
    """

    def __init__(self, apps: Iterable[ASGIApp], *, timeout: float = 10.0) -> None:
        self._timeout = timeout
        self._sockets: list[socket.socket] = []
        self._servers: list[uvicorn.Server] = []
        for app in apps:
            sock = bind_loopback()
            sock.listen(128)  # connections queue in the backlog until uvicorn accepts them
            self._sockets.append(sock)
            config = uvicorn.Config(
                app, lifespan="off", log_level="warning", access_log=False, timeout_keep_alive=30
            )
            self._servers.append(uvicorn.Server(config))
        self.urls = [url_of(sock) for sock in self._sockets]
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="demo-upstreams", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        tasks = [
            asyncio.create_task(server.serve(sockets=[sock]))
            for server, sock in zip(self._servers, self._sockets, strict=True)
        ]
        deadline = time.monotonic() + self._timeout
        while not all(server.started for server in self._servers):
            if any(task.done() for task in tasks) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.005)
        self._ready.set()
        await asyncio.gather(*tasks)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(self._timeout):
            self.stop()
            raise RuntimeError(f"the upstream servers did not start within {self._timeout}s")
        if self._error is not None or not all(s.started for s in self._servers):
            self.stop()
            raise RuntimeError("the upstream servers failed to start") from self._error
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(self._timeout)
        for sock in self._sockets:
            sock.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class Upstream:
    """One running upstream as the rest of the demo sees it."""

    script: Script
    url: str
    app: UpstreamApp | None  # None for the refusing one: there is no server

    @property
    def name(self) -> str:
        return self.script.name

    def condition(self, now: float | None = None) -> str:
        return self.app.condition(now) if self.app is not None else "refusing"


class Upstreams:
    """Start every scripted upstream; ``with Upstreams(duration) as ups: ups.all``."""

    def __init__(self, duration: float, scripts: Iterable[Script] = SCRIPTS) -> None:
        self.started = time.monotonic()
        self.duration = duration
        self.scripts = tuple(scripts)
        self._refused: list[socket.socket] = []
        self._apps = {
            s.name: UpstreamApp(s, duration, self.started)
            for s in self.scripts
            if s.fault != "refuse"
        }
        self._servers = ServerThread(self._apps.values())
        self.all: list[Upstream] = []

    def __enter__(self) -> Upstreams:
        self._servers.__enter__()
        urls = dict(zip(self._apps, self._servers.urls, strict=True))
        for script in self.scripts:
            if script.fault == "refuse":
                sock = bind_loopback()  # bound, never listening: every connect is refused
                self._refused.append(sock)
                self.all.append(Upstream(script, url_of(sock), None))
            else:
                self.all.append(Upstream(script, urls[script.name], self._apps[script.name]))
        return self

    def restart_clock(self) -> float:
        """Make "now" the start of every script (call it just before the traffic starts)."""
        self.started = time.monotonic()
        for app in self._apps.values():
            app.started = self.started
        return self.started

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._servers.stop()
        for sock in self._refused:
            sock.close()
