"""HTTP/2 servers on 127.0.0.1 over TLS (trustme certificates) for the HTTP/2 tests.

``HypercornServer``: a real h2 server (hypercorn) running a tiny ASGI app whose answer the test
switches. ``GoawayServer``: a bare h2 connection (the h2 library) that answers one request, then
waits for a burst of concurrent requests on the same connection and ends it with one GOAWAY, which
no real server does on demand.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from types import TracebackType
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config


class Tls:
    """A throw-away CA and a certificate for 127.0.0.1."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("127.0.0.1")

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        context.set_alpn_protocols(["h2"])
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


class HypercornServer:
    """``status`` is what every request gets (200 by default); ``hits`` counts requests."""

    def __init__(self, tls: Tls, tmp_path: Any) -> None:
        self.status = 200
        self.hits = 0
        self._sock = _listening_socket()
        self.url = f"https://127.0.0.1:{self._sock.getsockname()[1]}"
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        tls.cert.cert_chain_pems[0].write_to_path(str(cert))
        tls.cert.private_key_pem.write_to_path(str(key))
        self._config = Config()
        self._config.bind = [f"fd://{self._sock.fileno()}"]
        self._config.certfile, self._config.keyfile = str(cert), str(key)
        self._config.alpn_protocols = ["h2"]
        self._config.accesslog = self._config.errorlog = None
        self._config.graceful_timeout = 1.0
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.hits += 1
        body = f"{scope['http_version']} {self.status}".encode()
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(
            serve(self._app, self._config, shutdown_trigger=self._stop.wait)
        )  # type: ignore[arg-type]

    def __enter__(self) -> HypercornServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        self._sock.detach()  # hypercorn owned the descriptor and has closed it
        self._loop.close()


class GoawayServer:
    """Answers the first request on a connection with 200, then, once ``burst`` more requests are
    in flight on it, sends one GOAWAY (INTERNAL_ERROR, last stream = the newest) and hangs up."""

    def __init__(self, tls: Tls, burst: int) -> None:
        self.burst = burst
        self.connections = 0
        self._context = tls.server_context()
        self._sock = _listening_socket()
        self._sock.settimeout(0.1)
        self.url = f"https://127.0.0.1:{self._sock.getsockname()[1]}"
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while self._running:
            try:
                raw, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            raw.settimeout(10)
            try:
                with self._context.wrap_socket(raw, server_side=True) as conn:
                    self._serve(conn)
            except (OSError, ssl.SSLError):
                pass

    def _serve(self, conn: ssl.SSLSocket) -> None:
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        h2c.initiate_connection()
        conn.sendall(h2c.data_to_send())
        answered = False
        pending: list[int] = []
        while data := conn.recv(65535):
            for event in h2c.receive_data(data):
                if not isinstance(event, h2.events.RequestReceived):
                    continue
                if answered:
                    pending.append(event.stream_id)
                    continue
                answered = True
                h2c.send_headers(event.stream_id, [(":status", "200"), ("content-length", "2")])
                h2c.send_data(event.stream_id, b"ok", end_stream=True)
            if len(pending) >= self.burst:
                h2c.close_connection(
                    h2.errors.ErrorCodes.INTERNAL_ERROR, last_stream_id=max(pending)
                )
                conn.sendall(h2c.data_to_send())
                return
            conn.sendall(h2c.data_to_send())

    def __enter__(self) -> GoawayServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._running = False
        self._thread.join(timeout=10)
        self._sock.close()
