"""Real HTTP servers on 127.0.0.1 for the tests, with behaviour the test can switch at run time."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

#: Behaviours of ``FlakyServer``:
#: ``ok`` (200 "ok"), ``error`` (503 "down"), ``reset_mid_body`` (10 bytes of 1000, then a RST),
#: ``hang`` (reads the request, never answers, until the server stops), ``garbage`` (a reply that
#: is not HTTP), ``close`` (closes the connection without a reply), ``drip`` (200, a 5-chunk body
#: with ``drip_interval`` seconds between chunks), ``stall_mid_body`` (200, half the body, then
#: silence until the server stops).
BEHAVIOURS = ("ok", "error", "reset_mid_body", "hang", "garbage", "close", "drip", "stall_mid_body")

DRIP_BODY = [b"chunk-%d;" % n for n in range(5)]


def _abort(connection: socket.socket) -> None:
    """Close with a RST (SO_LINGER 0), as a crashing upstream does."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection)

    def do_GET(self) -> None:
        owner = self.server.owner
        behaviour = owner.behaviour
        owner.hits += 1
        owner.arrived.set()
        if behaviour == "ok":
            self._send(200, b"ok")
        elif behaviour == "error":
            self._send(503, b"down")
        elif behaviour == "reset_mid_body":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            _abort(self.connection)
            self.close_connection = True
        elif behaviour == "hang":
            owner.stopping.wait(30)
            self.close_connection = True
        elif behaviour == "garbage":
            self.wfile.write(b"SSH-2.0-OpenSSH_9.6 this is not HTTP\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True
        elif behaviour == "close":
            self.close_connection = True
        elif behaviour in ("drip", "stall_mid_body"):
            self.send_response(200)
            self.send_header("Content-Length", str(sum(map(len, DRIP_BODY))))
            self.end_headers()
            for n, chunk in enumerate(DRIP_BODY):
                if behaviour == "stall_mid_body" and n == 2:
                    owner.stopping.wait(30)
                    self.close_connection = True
                    return
                self.wfile.write(chunk)
                self.wfile.flush()
                if n < len(DRIP_BODY) - 1 and owner.stopping.wait(owner.drip_interval):
                    return
        else:  # pragma: no cover - a test asked for a behaviour that does not exist
            raise AssertionError(behaviour)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FlakyServer


class FlakyServer:
    """``behaviour`` is one of ``BEHAVIOURS``; ``hits`` counts the requests that reached it.

    ``port`` rebinds a given port (to restart a server where it was); ``kill()`` stops it as a
    crash would (every open connection reset), and ``restart()`` brings it back on the same port.
    """

    def __init__(self, port: int = 0) -> None:
        self.behaviour = "ok"
        self.hits = 0
        self.drip_interval = 0.02
        self.stopping = threading.Event()
        self.arrived = threading.Event()  # set when a request reaches the server
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._port = port
        self._start_server()

    def _start_server(self) -> None:
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.owner = self
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> FlakyServer:
        self._thread.start()
        return self

    def _stop(self, abort: bool) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            if abort:
                _abort(connection)
            else:
                with contextlib.suppress(OSError):
                    connection.close()
        self._thread.join(timeout=5)

    def kill(self) -> None:
        """Stop listening and reset every open connection: the port now refuses."""
        self._stop(abort=True)

    def restart(self) -> None:
        """Listen again on the same port (after ``kill``)."""
        self.stopping = threading.Event()
        self._start_server()
        self._thread.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread.is_alive():
            self._stop(abort=False)


class ServerFarm:
    """Many HTTP/1.1 servers (one port each) on one asyncio loop in one thread: cheap enough for
    a thousand concurrent keep-alive connections.

    ``behaviours[i]`` is what port ``i`` does: ``ok`` (200), ``error`` (503) or ``reset`` (a RST
    after a partial body). ``hits[i]`` counts the requests port ``i`` received.
    """

    def __init__(self, behaviours: Iterable[str]) -> None:
        self.behaviours = list(behaviours)
        self.hits = [0] * len(self.behaviours)
        self.ports: list[int] = []
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.base_events.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    async def _serve(
        self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.hits[index] += 1
                behaviour = self.behaviours[index]
                if behaviour == "ok":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                elif behaviour == "error":
                    writer.write(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown"
                    )
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
                    await writer.drain()
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _start(self) -> None:
        for index in range(len(self.behaviours)):

            async def handle(
                r: asyncio.StreamReader, w: asyncio.StreamWriter, i: int = index
            ) -> None:
                await self._serve(i, r, w)

            server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
            self._servers.append(server)
            self.ports.append(server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for server in self._servers:
            await server.wait_closed()

    def __enter__(self) -> ServerFarm:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


def main(argv: list[str]) -> None:
    """``python -m tests.servers ok error reset``: a ServerFarm in its own process (so its sockets
    and threads are not the test's), printing its ports on one line, until stdin closes."""
    import sys

    with ServerFarm(argv) as farm:
        print(" ".join(map(str, farm.ports)), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
