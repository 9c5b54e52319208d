"""The transport contract, run against each supported library (httpx and httpx2).

Same policy objects, same state machine; only the library's classes differ. Inner transports are
``MockTransport`` (pre-read responses) and ``Scripted`` (streaming responses; see flavours.py).
"""

from __future__ import annotations

import threading

import anyio
import pytest

from breaker_transport import BreakerPolicy, CircuitState, FailureKind
from breaker_transport.testing import ManualClock, assert_state, open_circuit

from .flavours import Flavour, load
from .servers import FlakyServer

URL = "https://api.example/data"
KEY = "https://api.example"
pytestmark = pytest.mark.anyio


def other_library(flavour: Flavour) -> Flavour:
    return load("httpx2" if flavour.name == "httpx" else "httpx")


async def test_opens_and_rejects_with_the_libraries_own_error(
    flavour: Flavour, clock: ManualClock
) -> None:
    inner = flavour.scripted(503, 503)
    breaker = flavour.Async(inner, policy=BreakerPolicy(failure_threshold=2), clock=clock)
    async with flavour.lib.AsyncClient(transport=breaker) as client:
        for _ in range(2):
            response = await client.get(URL)
            assert (response.status_code, response.content) == (503, b"chunk-1chunk-2")
        with pytest.raises(flavour.CircuitOpenError) as caught:
            await client.get(URL)
    error = caught.value
    assert isinstance(error, flavour.lib.TransportError)
    assert not isinstance(error, (flavour.lib.NetworkError, flavour.lib.TimeoutException))
    assert not isinstance(error, other_library(flavour).lib.TransportError)
    assert (error.key, error.retry_after, error.state) == (KEY, 60.0, CircuitState.OPEN)
    assert error.request.url == flavour.lib.URL(URL)
    assert inner.sent == 2
    stats = breaker.stats()[KEY]
    assert (stats.failures, stats.rejections, stats.in_flight) == (2, 1, 0)


async def test_recovers_through_a_probe(flavour: Flavour, clock: ManualClock) -> None:
    inner = flavour.scripted(500, 200)
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=5.0)
    breaker = flavour.Async(inner, policy=policy, clock=clock)
    async with flavour.lib.AsyncClient(transport=breaker) as client:
        await client.get(URL)
        assert_state(breaker, KEY, "open")
        clock.advance(5.0)
        assert_state(breaker, KEY, "half_open")
        response = await client.get(URL)
        assert response.extensions["circuit_breaker"] == {"key": KEY, "state": "half_open"}
    assert_state(breaker, KEY, "closed")


async def test_exceptions_count_by_kind_and_reach_the_caller_unchanged(
    flavour: Flavour, clock: ManualClock
) -> None:
    names = ["ConnectError", "ReadTimeout", "PoolTimeout", "LocalProtocolError", "ProxyError"]
    inner = flavour.scripted(*names)
    breaker = flavour.Async(inner, policy=BreakerPolicy(failure_threshold=10), clock=clock)
    async with flavour.lib.AsyncClient(transport=breaker) as client:
        for name in names:
            with pytest.raises(getattr(flavour.lib, name), match=f"scripted {name}"):
                await client.get(URL)
    stats = breaker.stats()[KEY]
    assert (stats.failures, stats.ignored, stats.consecutive_failures) == (2, 3, 2)


async def test_one_policy_object_serves_both_libraries(
    flavour: Flavour, clock: ManualClock
) -> None:
    # Policies name kinds, not classes: ProxyError counts for whichever library raises it.
    policy = BreakerPolicy(failure_threshold=1, failure_exceptions={FailureKind.PROXY})
    breaker = flavour.Async(flavour.scripted("ProxyError"), policy=policy, clock=clock)
    async with flavour.lib.AsyncClient(transport=breaker) as client:
        with pytest.raises(flavour.lib.ProxyError):
            await client.get(URL)
    assert_state(breaker, KEY, "open")


async def test_an_error_mid_body_after_a_200_is_a_failure(
    flavour: Flavour, clock: ManualClock
) -> None:
    inner = flavour.scripted((200, "ReadError"), (200, "RemoteProtocolError"))
    breaker = flavour.Async(inner, policy=BreakerPolicy(failure_threshold=2), clock=clock)
    async with flavour.lib.AsyncClient(transport=breaker) as client:
        with pytest.raises(flavour.lib.ReadError):
            await client.get(URL)
        async with client.stream("GET", URL) as response:
            assert response.status_code == 200
            assert breaker.stats()[KEY].in_flight == 1  # not settled at the headers
            with pytest.raises(flavour.lib.RemoteProtocolError):
                await response.aread()
    assert_state(breaker, KEY, "open")
    assert breaker.stats()[KEY].failures == 2


async def test_a_body_closed_early_settles_on_its_status(
    flavour: Flavour, clock: ManualClock
) -> None:
    breaker = flavour.Async(flavour.scripted(200, 502), clock=clock)
    async with flavour.lib.AsyncClient(transport=breaker) as client:
        for _ in range(2):
            # Closed before the body is read. (Not a partial read: httpx's own async generators,
            # abandoned mid-body, emit ResourceWarnings under trio; httpx2 fixed that.)
            async with client.stream("GET", URL) as response:
                assert response.status_code in (200, 502)
                assert breaker.stats()[KEY].in_flight == 1
    stats = breaker.stats()[KEY]
    assert (stats.successes, stats.failures, stats.in_flight) == (1, 1, 0)


async def test_pre_read_mock_transport_responses_settle_at_once(
    flavour: Flavour, clock: ManualClock
) -> None:
    breaker = flavour.Async(flavour.mock(500, 404, 200), clock=clock)
    async with flavour.lib.AsyncClient(transport=breaker) as client:
        statuses = [(await client.get(URL)).status_code for _ in range(3)]
    assert statuses == [500, 404, 200]
    stats = breaker.stats()[KEY]
    assert (stats.failures, stats.successes, stats.in_flight) == (1, 2, 0)


async def test_fallback_must_build_a_response_of_the_same_library(
    flavour: Flavour, clock: ManualClock
) -> None:
    lib = flavour.lib

    def fallback(request: object, error: object) -> object:
        return lib.Response(503, headers={"Retry-After": "7"})

    breaker = flavour.Async(flavour.mock(500), clock=clock, fallback=fallback)
    breaker.force_open(KEY)
    async with lib.AsyncClient(transport=breaker) as client:
        response = await client.get(URL)
        assert (response.status_code, response.headers["retry-after"]) == (503, "7")
        foreign = other_library(flavour).lib

        def wrong(request: object, error: object) -> object:
            return foreign.Response(503)

        breaker._fallback = wrong  # the same breaker, now with a fallback of the other library
        with pytest.raises(TypeError, match=rf"fallback must return an {flavour.name}\.Response"):
            await client.get(URL)
    assert breaker.stats()[KEY].rejections == 2


def test_the_sync_twin_from_threads(flavour: Flavour, clock: ManualClock) -> None:
    inner = flavour.scripted(*([500] * 40))
    breaker = flavour.Sync(inner, policy=BreakerPolicy(failure_threshold=50), clock=clock)
    with flavour.lib.Client(transport=breaker) as client:

        def work() -> None:
            for _ in range(5):
                assert client.get(URL).status_code == 500

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    stats = breaker.stats()[KEY]
    assert (stats.failures, stats.consecutive_failures, stats.in_flight) == (40, 40, 0)
    assert inner.closed == 1


def test_the_sync_twin_opens_and_counts_a_mid_body_error(
    flavour: Flavour, clock: ManualClock
) -> None:
    inner = flavour.scripted(200, (200, "ReadError"))
    breaker = flavour.Sync(inner, policy=BreakerPolicy(failure_threshold=1), clock=clock)
    with flavour.lib.Client(transport=breaker) as client:
        with client.stream("GET", URL) as response:  # stopping early: a success, not an error
            for _ in response.iter_raw():
                break
        assert_state(breaker, KEY, "closed")
        with pytest.raises(flavour.lib.ReadError):
            client.get(URL)
        with pytest.raises(flavour.CircuitOpenError):
            client.get(URL)
    stats = breaker.stats()[KEY]
    assert (stats.successes, stats.failures, stats.rejections) == (1, 1, 1)


def test_a_transport_of_the_wrong_shape_is_refused_naming_the_library(flavour: Flavour) -> None:
    with pytest.raises(TypeError, match=rf"must be an {flavour.name}\.AsyncBaseTransport"):
        flavour.Async(flavour.lib.HTTPTransport())
    with pytest.raises(TypeError, match=rf"{flavour.name}\.MockTransport\(router\.handler\)"):
        flavour.Sync(object())


async def test_against_a_real_server_that_fails_and_recovers(
    flavour: Flavour, server: FlakyServer, clock: ManualClock
) -> None:
    policy = BreakerPolicy(failure_threshold=2, recovery_timeout=1.0)
    breaker = flavour.Async.over_http(policy=policy, clock=clock)
    assert isinstance(breaker._inner, flavour.lib.AsyncHTTPTransport)
    async with flavour.lib.AsyncClient(transport=breaker) as client:
        server.behaviour = "error"
        assert [(await client.get(server.url)).status_code for _ in range(2)] == [503, 503]
        with pytest.raises(flavour.CircuitOpenError):
            await client.get(server.url)
        server.behaviour = "reset_mid_body"
        clock.advance(1.0)
        with pytest.raises(flavour.lib.ReadError):
            await client.get(server.url)  # the probe: a 200 whose body breaks
        assert_state(breaker, server.url, "open")
        server.behaviour = "ok"
        clock.advance(1.0)
        assert (await client.get(server.url)).text == "ok"
    assert_state(breaker, server.url, "closed")
    assert server.hits == 4


class _Gate:
    """An inner transport (async) that holds every call until ``release`` is set."""

    def __init__(self, flavour: Flavour) -> None:
        self.flavour = flavour
        self.release = anyio.Event()
        self.entered = 0

    async def handle_async_request(self, request: object) -> object:
        self.entered += 1
        await self.release.wait()
        return self.flavour.lib.Response(200, content=b"probe")

    async def aclose(self) -> None:
        pass

    async def __aenter__(self) -> _Gate:
        return self


async def test_half_open_admits_exactly_the_probe_limit_of_many_concurrent_tasks(
    flavour: Flavour, clock: ManualClock
) -> None:
    gate = _Gate(flavour)
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=3)
    breaker = flavour.Async(gate, policy=policy, clock=clock)
    open_circuit(breaker, URL)
    clock.advance(1.0)
    results: list[str] = []
    async with flavour.lib.AsyncClient(transport=breaker) as client:

        async def one() -> None:
            try:
                await client.get(URL)
                results.append("sent")
            except flavour.CircuitOpenError as exc:
                results.append(f"rejected {exc.retry_after} {exc.state.value}")

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for _ in range(50):
                    group.start_soon(one)
                while len(results) < 47:  # every task but the probes was admitted or rejected
                    await anyio.sleep(0)
                assert gate.entered == 3
                gate.release.set()
    assert sorted(results) == ["rejected 0.0 half_open"] * 47 + ["sent"] * 3
    assert_state(breaker, KEY, "closed")


async def test_a_cancelled_probe_frees_its_slot_and_is_ignored(
    flavour: Flavour, clock: ManualClock
) -> None:
    gate = _Gate(flavour)
    breaker = flavour.Async(gate, policy=BreakerPolicy(failure_threshold=1), clock=clock)
    open_circuit(breaker, URL)
    clock.advance(60.0)
    async with flavour.lib.AsyncClient(transport=breaker) as client:
        with anyio.move_on_after(10) as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(client.get, URL)
                while gate.entered == 0:
                    await anyio.sleep(0)
                group.cancel_scope.cancel()
        assert not scope.cancelled_caught
        assert_state(breaker, KEY, "half_open")
        gate.release.set()
        assert (await client.get(URL)).content == b"probe"  # the slot was free again
    stats = breaker.stats()[KEY]
    assert (stats.state.value, stats.ignored, stats.successes, stats.in_flight) == (
        "closed",
        1,
        1,
        0,
    )


async def test_bypass_and_per_request_keys(flavour: Flavour, clock: ManualClock) -> None:
    breaker = flavour.Async(flavour.mock(500, 500, 200), clock=clock)
    breaker.force_open(KEY)
    async with flavour.lib.AsyncClient(transport=breaker) as client:
        health = await client.get(URL, extensions={"circuit_breaker": {"bypass": True}})
        assert health.extensions["circuit_breaker"] == {"key": KEY, "state": None, "bypassed": True}
        tenant = await client.get(URL, extensions={"circuit_breaker": {"key": "tenant-a"}})
        assert tenant.status_code == 500
        with pytest.raises(ValueError, match="unknown option"):
            await client.get(URL, extensions={"circuit_breaker": {"bypas": True}})
    assert (breaker.stats()["tenant-a"].failures, breaker.stats()[KEY].failures) == (1, 0)


async def test_close_is_idempotent_and_reaches_the_inner_transport(flavour: Flavour) -> None:
    inner = flavour.scripted()
    breaker = flavour.Async(inner)
    async with breaker as entered:
        assert entered is breaker
    await breaker.aclose()
    sync_inner = flavour.scripted()
    with flavour.Sync(sync_inner) as sync_breaker:
        pass
    sync_breaker.close()
    assert (inner.closed, sync_inner.closed) == (1, 1)
