"""Worker processes for the multi-process Redis tests (importable, for the spawn start method)."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import redis

from breaker_transport import BreakerPolicy, CircuitBreakerTransport, CircuitOpenError
from breaker_transport.storage import RedisStorage


def hammer(
    url: str,
    threshold: int,
    rounds: int,
    start: Any,
    in_flight: Any,
    hits: Any,
    results: Any,
) -> None:
    """Send ``rounds`` requests in lock step with the other workers to one failing host.

    ``start`` (a barrier of every worker) begins each round together; ``in_flight`` (a barrier
    of every worker) holds each request that reaches the host until every worker's request of
    that round has been admitted, so exactly ``workers`` calls are in flight per round.
    """

    def failing_host(request: httpx.Request) -> httpx.Response:
        with hits.get_lock():
            hits.value += 1
        in_flight.wait(timeout=20)
        return httpx.Response(503)

    transport = CircuitBreakerTransport(
        httpx.MockTransport(failing_host),
        policy=BreakerPolicy(failure_threshold=threshold, recovery_timeout=600.0),
        storage=RedisStorage(redis.Redis.from_url(url), prefix="hammer", timeout=2.0),
    )
    outcome = {"failures": 0, "rejections": 0}
    with httpx.Client(transport=transport) as client:
        for _ in range(rounds):
            start.wait(timeout=20)
            try:
                client.get("http://failing.example/")
                outcome["failures"] += 1
            except CircuitOpenError:
                outcome["rejections"] += 1
    results.put(outcome)


def hold_a_probe(url: str, probe_timeout: float, holding: Any) -> None:
    """Take the probe slot of a half-open circuit and hang in the host until killed."""

    def hanging_host(request: httpx.Request) -> httpx.Response:
        holding.set()
        threading.Event().wait(60)  # killed long before
        return httpx.Response(200)

    transport = CircuitBreakerTransport(
        httpx.MockTransport(hanging_host),
        policy=BreakerPolicy(
            failure_threshold=1, recovery_timeout=0.05, probe_timeout=probe_timeout
        ),
        storage=RedisStorage(redis.Redis.from_url(url), prefix="lease", timeout=2.0),
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.Client(transport=transport).get("http://probe.example/")
        except CircuitOpenError:
            time.sleep(0.01)  # not half-open yet on Redis's clock
