"""Outcomes settle when the response is closed: body errors, early close, cancel, never closed."""

from __future__ import annotations

import anyio
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

from .helpers import Reply, StreamingTransport

URL = "https://api.example.com/stream"
KEY = "https://api.example.com"
POLICY = BreakerPolicy(failure_threshold=1, recovery_timeout=10.0, probe_timeout=30.0)

# httpx's own async generators (not ours: our wrappers are class-based) are abandoned on a partial
# read, and trio reports that at garbage collection. Only those two names are tolerated.
HTTPX_PARTIAL_READ = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object "
    "(BoundAsyncStream.__aiter__|Response.aiter_raw):pytest.PytestUnraisableExceptionWarning"
)


@pytest.mark.anyio
async def test_read_error_mid_body_after_a_200_is_a_failure(clock: ManualClock) -> None:
    inner = StreamingTransport(lambda r: Reply(200, [b"part", httpx.ReadError("reset")]))
    transport = AsyncCircuitBreakerTransport(inner, policy=POLICY, clock=clock)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ReadError):
            await client.get(URL)
        assert transport.state(URL) is CircuitState.OPEN
    stats = transport.stats()[KEY]
    assert (stats.failures, stats.successes, stats.in_flight) == (1, 0, 0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "error", [httpx.RemoteProtocolError("peer closed"), httpx.ReadTimeout("stalled body")]
)
async def test_other_body_errors_count_under_client_stream(
    clock: ManualClock, error: Exception
) -> None:
    inner = StreamingTransport(lambda r: Reply(200, [b"a", b"b", error]))
    transport = AsyncCircuitBreakerTransport(inner, policy=POLICY, clock=clock)
    async with httpx.AsyncClient(transport=transport) as client:
        async with client.stream("GET", URL) as response:
            assert response.status_code == 200
            assert transport.stats()[KEY].in_flight == 1  # not settled at the headers
            with pytest.raises(type(error)):
                await response.aread()
    assert transport.stats()[KEY].failures == 1


@pytest.mark.anyio
async def test_body_bytes_pass_through_unchanged(clock: ManualClock) -> None:
    chunks = [b"\x00\xff", b"hello", b"", b"world" * 1000]
    inner = StreamingTransport(lambda r: Reply(200, chunks))
    transport = AsyncCircuitBreakerTransport(inner, policy=POLICY, clock=clock)
    async with httpx.AsyncClient(transport=transport) as client:
        async with client.stream("GET", URL) as response:
            raw = [chunk async for chunk in response.aiter_raw()]
    assert b"".join(raw) == b"".join(chunks)
    assert transport.stats()[KEY].successes == 1
    assert inner.stream_log == ["closed"]


@pytest.mark.anyio
@HTTPX_PARTIAL_READ
async def test_early_close_settles_on_the_status(clock: ManualClock) -> None:
    inner = StreamingTransport(lambda r: Reply(503, [b"a", b"b", b"c"]))
    transport = AsyncCircuitBreakerTransport(inner, policy=POLICY, clock=clock)
    async with httpx.AsyncClient(transport=transport) as client:
        async with client.stream("GET", URL) as response:
            async for _ in response.aiter_raw():
                break  # stop reading after the first chunk
        assert transport.state(URL) is CircuitState.OPEN
    assert transport.stats()[KEY].failures == 1


@pytest.mark.anyio
@HTTPX_PARTIAL_READ
async def test_cancellation_mid_body_is_ignored_not_a_success(clock: ManualClock) -> None:
    release = anyio.Event()

    class SlowBody(httpx.AsyncByteStream):
        sent = False

        def __aiter__(self) -> SlowBody:
            return self

        async def __anext__(self) -> bytes:
            if not self.sent:
                self.sent = True
                return b"first"
            await release.wait()  # never set: the caller is cancelled here
            raise StopAsyncIteration

    class Inner(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, stream=SlowBody())

    transport = AsyncCircuitBreakerTransport(Inner(), policy=POLICY, clock=clock)
    async with httpx.AsyncClient(transport=transport) as client:
        with anyio.CancelScope() as scope:
            async with client.stream("GET", URL) as response:
                async for _ in response.aiter_raw():
                    scope.cancel()
    stats = transport.stats()[KEY]
    assert (stats.ignored, stats.successes, stats.failures, stats.in_flight) == (1, 0, 0, 0)


@pytest.mark.anyio
async def test_never_closed_probe_is_released_after_probe_timeout(clock: ManualClock) -> None:
    answers = iter([Reply(503), Reply(200), Reply(200)])
    inner = StreamingTransport(lambda r: next(answers))
    transport = AsyncCircuitBreakerTransport(inner, policy=POLICY, clock=clock)
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(URL)  # opens
        clock.advance(10.0)
        abandoned = await client.send(client.build_request("GET", URL), stream=True)  # the probe
        assert abandoned.status_code == 200
        with pytest.raises(CircuitOpenError):
            await client.get(URL)  # the only slot is held by the abandoned probe
        clock.advance(30.0)
        response = await client.get(URL)  # the slot expired: a new probe goes through
        assert response.status_code == 200
        assert transport.state(URL) is CircuitState.CLOSED
        await abandoned.aclose()  # its late close changes nothing
    stats = transport.stats()[KEY]
    assert stats.state is CircuitState.CLOSED
    assert (stats.ignored, stats.successes, stats.failures, stats.rejections) == (1, 1, 1, 1)


@pytest.mark.anyio
async def test_each_call_settles_at_most_once(clock: ManualClock) -> None:
    inner = StreamingTransport(lambda r: Reply(200, [b"x", httpx.ReadError("boom")]))
    transport = AsyncCircuitBreakerTransport(
        inner, policy=BreakerPolicy(failure_threshold=5), clock=clock
    )
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.send(client.build_request("GET", URL), stream=True)
        with pytest.raises(httpx.ReadError):
            await response.aread()
        await response.aclose()
        await response.aclose()
    stats = transport.stats()[KEY]
    assert (stats.failures, stats.successes, stats.in_flight) == (1, 0, 0)


def test_sync_partial_read_is_a_success_not_ignored(clock: ManualClock) -> None:
    inner = StreamingTransport(lambda r: Reply(200, [b"a", b"b", b"c"]))
    transport = CircuitBreakerTransport(inner, policy=POLICY, clock=clock)
    with httpx.Client(transport=transport) as client:
        with client.stream("GET", URL) as response:
            for _ in response.iter_raw():
                break  # the sync generator chain above us sees GeneratorExit; we must not
    stats = transport.stats()[KEY]
    assert (stats.successes, stats.ignored, stats.in_flight) == (1, 0, 0)


def test_sync_mid_body_error_is_a_failure(clock: ManualClock) -> None:
    inner = StreamingTransport(lambda r: Reply(200, [b"a", httpx.RemoteProtocolError("cut")]))
    transport = CircuitBreakerTransport(inner, policy=POLICY, clock=clock)
    with httpx.Client(transport=transport) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(URL)
        with pytest.raises(CircuitOpenError):
            client.get(URL)
    assert transport.stats()[KEY].failures == 1
