"""The demo, start to finish: upstreams up, traffic through one breaker transport, a summary back.

Everything is real except the faults' script: uvicorn servers on 127.0.0.1 free ports, a real
``httpx.AsyncHTTPTransport`` inside one ``AsyncCircuitBreakerTransport``, the default monotonic
clock. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from .._events import BreakerListener
from .._httpx import AsyncCircuitBreakerTransport
from .._keys import key_for
from .policies import parse_policy
from .summary import DemoSummary, Recorder, summarise_host
from .traffic import drive
from .upstreams import ServerThread, Upstreams

#: The client's timeout: it bounds every request, so the run ends soon after ``duration``.
CLIENT_TIMEOUT = 1.0


@dataclass(frozen=True)
class DemoOptions:
    """What ``breaker-transport demo`` takes on its command line."""

    duration: float = 20.0
    concurrency: int = 8
    policy: str = "consecutive"
    pace: float = 0.05
    status: bool = False  # also serve status_app on a free port while the demo runs

    def __post_init__(self) -> None:
        if not 0 < self.duration <= 3600:
            raise ValueError(f"duration must be in (0, 3600] seconds, got {self.duration!r}")
        if not 1 <= self.concurrency <= 256:
            raise ValueError(f"concurrency must be between 1 and 256, got {self.concurrency!r}")
        if not 0.001 <= self.pace <= 10:
            raise ValueError(f"pace must be between 0.001 and 10 seconds, got {self.pace!r}")


@contextlib.contextmanager
def _status_server(transport: AsyncCircuitBreakerTransport, console: Console) -> Iterator[None]:
    from ..status import status_app

    with ServerThread([status_app(transport, title="breaker_transport demo")]) as server:
        console.print(f"status page: {server.urls[0]}/  (JSON: {server.urls[0]}/json)")
        yield


async def run_demo(options: DemoOptions, console: Console | None = None) -> DemoSummary:
    """Run the demo and return what happened. Shows a live table on ``console`` if given."""
    from .live import TransitionPrinter, live_table, upstream_lines, wants_live

    policy = parse_policy(options.policy, options.duration)
    with Upstreams(options.duration) as upstreams:
        keys = {u.name: key_for(u.url) for u in upstreams.all}
        if console is not None:
            console.print(upstream_lines(upstreams.all))
        names = {key: name for name, key in keys.items()}
        started = upstreams.restart_clock()
        recorder = Recorder(started)
        listeners: list[BreakerListener] = [recorder]
        printer = TransitionPrinter(console, names, started) if console is not None else None
        if printer is not None:
            listeners.append(printer)
        inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=4 * options.concurrency)
        )
        transport = AsyncCircuitBreakerTransport(inner, policy=policy, listeners=listeners)
        if printer is not None:
            printer.stats = transport.stats
        status = (
            _status_server(transport, console)
            if options.status and console is not None
            else contextlib.nullcontext()
        )

        def table() -> Table:
            return live_table(
                upstreams.all,
                keys,
                transport.stats(),
                time.monotonic() - started,
                options.duration,
            )

        live = (
            Live(console=console, auto_refresh=False, transient=False)
            if console is not None and wants_live(console)
            else None
        )
        async with httpx.AsyncClient(transport=transport, timeout=CLIENT_TIMEOUT) as client:
            with status, live if live is not None else contextlib.nullcontext():
                driver = asyncio.ensure_future(
                    drive(
                        client,
                        [u.url for u in upstreams.all],
                        duration=options.duration,
                        concurrency=options.concurrency,
                        pace=options.pace,
                    )
                )
                while not driver.done():
                    if live is not None:
                        live.update(table(), refresh=True)
                    await asyncio.wait({driver}, timeout=0.25)
                if live is not None:
                    live.update(table(), refresh=True)
                errors = driver.result()
        elapsed = time.monotonic() - started
        stats = transport.stats()
        hosts = tuple(
            summarise_host(
                u, keys[u.name], stats.get(keys[u.name]), recorder, options.duration, elapsed
            )
            for u in upstreams.all
        )
    return DemoSummary(
        elapsed=elapsed,
        planned=options.duration,
        concurrency=options.concurrency,
        policy=policy,
        hosts=hosts,
        errors=dict(errors),
    )
