"""``python -m breaker_transport demo``: watch a circuit open and recover against a local server."""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from . import AsyncCircuitBreakerTransport, BreakerPolicy, CircuitOpenError, StateChange


class _Flaky(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    failing = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        status, body = (503, b"down") if _Flaky.failing else (200, b"ok")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


async def _demo(duration: float) -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    def show(change: StateChange) -> None:
        print(f"  [{change.at:7.2f}] {change.key}: {change.old} -> {change.new} ({change.reason})")

    policy = BreakerPolicy(failure_threshold=3, recovery_timeout=duration / 4)
    transport = AsyncCircuitBreakerTransport(policy=policy, on_state_change=show)
    sent = rejected = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with httpx.AsyncClient(transport=transport) as client:
        while (now := loop.time() - start) < duration:
            _Flaky.failing = now < duration / 2
            try:
                await client.get(url)
                sent += 1
            except CircuitOpenError:
                rejected += 1
            await asyncio.sleep(duration / 100)
    server.shutdown()
    print(f"sent {sent} requests, {rejected} failed fast while the upstream was down")
    print(f"final state: {transport.state(url)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="breaker-transport")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the breaker against a local flaky server")
    demo.add_argument("--duration", type=float, default=8.0, help="seconds (default 8)")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error(f"--duration must be > 0, got {args.duration}")
    return asyncio.run(_demo(args.duration))


if __name__ == "__main__":
    sys.exit(main())
