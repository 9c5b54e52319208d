"""Real faults on real sockets: servers on 127.0.0.1 that die, refuse, reset, hang, lie and drip.

Every request has a short httpx timeout (TIMEOUT), and every request is timed: none may take more
than twice its timeout. The breaker's clock is a ManualClock, so no test waits for a state; the
only waiting is httpx's own timeouts, which are what some of these tests are about.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import anyio
import anyio.to_thread
import httpx
import pytest

from breaker_transport import (
    AsyncCircuitBreakerTransport,
    BreakerPolicy,
    CircuitBreakerTransport,
    CircuitOpenError,
    CircuitState,
)
from breaker_transport.testing import ManualClock

from .servers import DRIP_BODY, FlakyServer

TIMEOUT = 0.25
POLICY = BreakerPolicy(failure_threshold=2, recovery_timeout=30.0)

#: behaviour -> what the caller must get (the exception classes httpx raises for it)
FAULTS: dict[str, tuple[type[BaseException], ...]] = {
    "error": (),  # a 503 response, no exception
    "reset_mid_body": (httpx.ReadError, httpx.RemoteProtocolError),
    "hang": (httpx.ReadTimeout,),
    "garbage": (httpx.RemoteProtocolError,),
    "close": (httpx.RemoteProtocolError,),
    "stall_mid_body": (httpx.ReadTimeout,),
}


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    with FlakyServer() as running:
        yield running


class Timed:
    """Times every request, so a test can assert none took more than twice its timeout."""

    def __init__(self) -> None:
        self.longest = 0.0

    def __enter__(self) -> Timed:
        self._start = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.longest = max(self.longest, time.monotonic() - self._start)


def _expect(status_or_error: tuple[type[BaseException], ...], response: object) -> None:
    if not status_or_error:
        assert isinstance(response, httpx.Response) and response.status_code == 503
    else:
        assert isinstance(response, status_or_error), response


async def _aget(client: httpx.AsyncClient, url: str, timer: Timed) -> object:
    with timer:
        try:
            return await client.get(url)
        except httpx.HTTPError as exc:
            return exc


def _get(client: httpx.Client, url: str, timer: Timed) -> object:
    with timer:
        try:
            return client.get(url)
        except httpx.HTTPError as exc:
            return exc


@pytest.mark.anyio
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_each_fault_opens_the_circuit_then_one_probe_closes_it(
    fault: str, flaky: FlakyServer, clock: ManualClock
) -> None:
    transport = AsyncCircuitBreakerTransport(policy=POLICY, clock=clock)
    timer = Timed()
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
        flaky.behaviour = fault
        for _ in range(2):
            _expect(FAULTS[fault], await _aget(client, flaky.url, timer))
        assert transport.state(flaky.url) is CircuitState.OPEN
        hits = flaky.hits
        for _ in range(3):
            assert isinstance(await _aget(client, flaky.url, timer), CircuitOpenError)
        assert flaky.hits == hits  # failing fast: nothing reached the server
        flaky.behaviour = "ok"
        clock.advance(30.0)
        response = await _aget(client, flaky.url, timer)
        assert isinstance(response, httpx.Response) and response.status_code == 200
        assert transport.state(flaky.url) is CircuitState.CLOSED
    stats = transport.stats()[flaky.url]
    assert (stats.failures, stats.rejections, stats.successes, stats.in_flight) == (2, 3, 1, 0)
    assert timer.longest < 2 * TIMEOUT


@pytest.mark.parametrize("fault", ["reset_mid_body", "hang", "garbage", "close"])
def test_each_fault_through_the_sync_transport(
    fault: str, flaky: FlakyServer, clock: ManualClock
) -> None:
    transport = CircuitBreakerTransport(policy=POLICY, clock=clock)
    timer = Timed()
    with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        flaky.behaviour = fault
        for _ in range(2):
            _expect(FAULTS[fault], _get(client, flaky.url, timer))
        assert isinstance(_get(client, flaky.url, timer), CircuitOpenError)
        flaky.behaviour = "ok"
        clock.advance(30.0)
        assert _get(client, flaky.url, timer).status_code == 200  # type: ignore[union-attr]
    stats = transport.stats()[flaky.url]
    assert (stats.failures, stats.rejections, stats.successes, stats.in_flight) == (2, 1, 1, 0)
    assert timer.longest < 2 * TIMEOUT


KILL_TIMEOUT = 1.0  # long enough for the kill to land while the request is in flight


@pytest.mark.anyio
async def test_server_killed_mid_run_and_restarted(clock: ManualClock) -> None:
    """Killed with a request in flight (it fails), refused while down (the circuit opens at the
    threshold and then fails fast), restarted on its port (one probe closes the circuit)."""
    timer = Timed()
    transport = AsyncCircuitBreakerTransport(
        policy=BreakerPolicy(failure_threshold=3, recovery_timeout=30.0), clock=clock
    )
    with FlakyServer() as server:
        url = server.url
        async with httpx.AsyncClient(transport=transport, timeout=KILL_TIMEOUT) as client:
            for _ in range(5):
                assert (await client.get(url)).status_code == 200
            server.behaviour = "hang"
            results: list[object] = []
            async with anyio.create_task_group() as tg:

                async def in_flight() -> None:
                    results.append(await _aget(client, url, timer))

                tg.start_soon(in_flight)
                assert await anyio.to_thread.run_sync(server.arrived.wait, 5.0)
                await anyio.to_thread.run_sync(server.kill)
            assert isinstance(results[0], (httpx.ReadError, httpx.RemoteProtocolError)), results
            for _ in range(2):  # down: refused
                assert isinstance(await _aget(client, url, timer), httpx.ConnectError)
            assert transport.state(url) is CircuitState.OPEN
            for _ in range(5):
                assert isinstance(await _aget(client, url, timer), CircuitOpenError)
            server.behaviour = "ok"
            server.restart()
            clock.advance(30.0)
            probe = await _aget(client, url, timer)
            assert isinstance(probe, httpx.Response) and probe.status_code == 200
            assert transport.state(url) is CircuitState.CLOSED
            for _ in range(3):
                assert (await _aget(client, url, timer)).status_code == 200  # type: ignore[union-attr]
    stats = transport.stats()[url]
    assert (stats.successes, stats.failures, stats.rejections, stats.in_flight) == (9, 3, 5, 0)
    assert timer.longest < 2 * KILL_TIMEOUT


@pytest.mark.anyio
async def test_slow_drip_body_arrives_whole_and_counts_as_a_success(
    flaky: FlakyServer, clock: ManualClock
) -> None:
    flaky.behaviour = "drip"  # 5 chunks, 20 ms apart: each read well within the read timeout
    transport = AsyncCircuitBreakerTransport(policy=BreakerPolicy(failure_threshold=1), clock=clock)
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
        for _ in range(3):
            async with client.stream("GET", flaky.url) as response:
                chunks = [chunk async for chunk in response.aiter_raw()]
            assert b"".join(chunks) == b"".join(DRIP_BODY)
    stats = transport.stats()[flaky.url]
    assert (stats.successes, stats.failures, stats.state) == (3, 0, CircuitState.CLOSED)
