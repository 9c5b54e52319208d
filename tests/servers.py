"""Real HTTP servers on 127.0.0.1 for the tests, with behaviour the test can switch at run time."""

from __future__ import annotations

import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        behaviour = self.server.owner.behaviour
        self.server.owner.hits += 1
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
            # SO_LINGER 0: close with a RST, as a crashing upstream does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
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
    """``behaviour`` is ``"ok"`` (200), ``"error"`` (503) or ``"reset_mid_body"``."""

    def __init__(self) -> None:
        self.behaviour = "ok"
        self.hits = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FlakyServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
