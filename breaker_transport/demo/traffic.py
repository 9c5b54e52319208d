"""The demo's traffic: ``concurrency`` workers, each cycling through the upstreams.

Bounded both ways: every worker stops at the deadline (finishing the request it is in, which the
client's timeout bounds) and after at most ``max_requests`` requests. A worker waits ``pace``
seconds between requests, so a host that fails fast does not turn the loop into a spin.

An upstream that is slow ties a worker up for as long as it takes to answer: that is the cost the
breaker saves once it rejects those calls, and the live table shows the other hosts getting more
traffic when it does.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence

import httpx

from .._httpx import CircuitOpenError


async def _worker(
    client: httpx.AsyncClient,
    urls: Sequence[str],
    first: int,
    deadline: float,
    pace: float,
    max_requests: int,
    errors: Counter[str],
) -> None:
    index = first
    for _ in range(max_requests):
        if time.monotonic() >= deadline:
            return
        url = urls[index % len(urls)]
        index += 1
        try:
            await client.get(url)
        except CircuitOpenError:
            pass  # failed fast: the breaker's job
        except httpx.TransportError as exc:  # refused, timed out: what the breaker counts
            errors[type(exc).__name__] += 1
        await asyncio.sleep(pace)


async def drive(
    client: httpx.AsyncClient,
    urls: Sequence[str],
    *,
    duration: float,
    concurrency: int,
    pace: float = 0.05,
) -> Counter[str]:
    """Send traffic for ``duration`` seconds; returns the transport errors seen, by class name."""
    if not urls:
        raise ValueError("drive() needs at least one URL")
    deadline = time.monotonic() + duration
    max_requests = int(duration / pace) + 1
    errors: Counter[str] = Counter()

    async def staggered(i: int) -> None:
        await asyncio.sleep(pace * i / concurrency)  # spread the workers' first requests
        await _worker(client, urls, i, deadline, pace, max_requests, errors)

    await asyncio.gather(*(staggered(i) for i in range(concurrency)))
    return errors
