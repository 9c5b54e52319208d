"""Composing the breaker with retries (httpx-retries, stamina) and caching (hishel).

The README's "Composing with retries and caching" states the orders; these tests are why. Retry
waits never sleep: each retry library's wait is replaced by advancing the breaker's ManualClock by
exactly the seconds the library asked for, so the tests see what a real deployment would wait.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import stamina
from httpx_retries import Retry, RetryTransport

from breaker_transport import AsyncCircuitBreakerTransport, BreakerPolicy, CircuitOpenError
from breaker_transport.testing import ManualClock, assert_state

from .flavours import Flavour

URL = "https://api.example/data"
KEY = "https://api.example"
pytestmark = pytest.mark.anyio


def clocked_retry(clock: ManualClock, waits: list[float], **options: Any) -> Retry:
    """An httpx-retries ``Retry`` whose waits advance ``clock`` instead of sleeping."""

    class ClockedRetry(Retry):
        def sleep(self, response: httpx.Response | Exception) -> None:
            header = (
                response.headers.get("Retry-After")
                if isinstance(response, httpx.Response)
                else None
            )
            seconds = self.parse_retry_after(header) if header else self.backoff_strategy()
            waits.append(seconds)
            clock.advance(seconds)

        async def asleep(self, response: httpx.Response | Exception) -> None:
            self.sleep(response)

    return ClockedRetry(**options)


def transitions(events: list[Any]) -> list[str]:
    return [f"{e.old.value}->{e.new.value}" for e in events]


# -- httpx-retries ---------------------------------------------------------------------------------


async def test_retries_outside_count_every_attempt_and_stop_at_the_open_circuit(
    clock: ManualClock,
) -> None:
    httpx_flavour = _httpx()
    inner = httpx_flavour.scripted(503, 503, 503, 503, 503)
    breaker = AsyncCircuitBreakerTransport(
        inner, policy=BreakerPolicy(failure_threshold=2), clock=clock
    )
    waits: list[float] = []
    retrying = RetryTransport(breaker, retry=clocked_retry(clock, waits, total=5))
    async with httpx.AsyncClient(transport=retrying) as client:
        with pytest.raises(CircuitOpenError):
            await client.get(URL)
    # Two attempts reached the host and both counted; the third met the open circuit, and
    # CircuitOpenError (a TransportError, not a NetworkError/TimeoutException) was not retried.
    assert inner.sent == 2
    stats = breaker.stats()[KEY]
    assert (stats.failures, stats.rejections) == (2, 1)
    assert len(waits) == 2


async def test_retries_outside_honour_retry_after_once(clock: ManualClock) -> None:
    inner = _httpx().scripted((503, {"Retry-After": "30"}), 200)
    events: list[Any] = []
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=5.0)  # Retry-After lengthens it
    breaker = AsyncCircuitBreakerTransport(
        inner, policy=policy, clock=clock, on_state_change=events.append
    )
    waits: list[float] = []
    retrying = RetryTransport(breaker, retry=clocked_retry(clock, waits, total=3))
    start = clock()
    async with httpx.AsyncClient(transport=retrying) as client:
        response = await client.get(URL)
    # The 503's Retry-After opened the circuit for 30 s; the retry waited those same 30 s, and
    # its attempt was the probe that closed the circuit: 30 s in all, not 60.
    assert response.status_code == 200
    assert waits == [30.0]
    assert clock() - start == 30.0
    assert transitions(events) == ["closed->open", "open->half_open", "half_open->closed"]
    assert inner.sent == 2


async def test_retries_inside_hide_attempts_and_honour_retry_after_twice(
    clock: ManualClock,
) -> None:
    # The other order: one breaker call per logical request. The retry layer already waited the
    # Retry-After; the final 503 then opens the circuit for the same 30 s again.
    inner = _httpx().scripted((503, {"Retry-After": "30"}), (503, {"Retry-After": "30"}), 503, 200)
    waits: list[float] = []
    retrying = RetryTransport(inner, retry=clocked_retry(clock, waits, total=1))
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=5.0)
    breaker = AsyncCircuitBreakerTransport(retrying, policy=policy, clock=clock)
    async with httpx.AsyncClient(transport=breaker) as client:
        assert (await client.get(URL)).status_code == 503
        with pytest.raises(CircuitOpenError) as caught:
            await client.get(URL)
    assert waits == [30.0]
    assert caught.value.retry_after == 30.0  # 30 s more, after 30 s already waited
    # And a request whose retry succeeded is one success: the flapping host never shows.
    breaker.reset()
    async with httpx.AsyncClient(transport=breaker) as client:
        assert (await client.get(URL)).status_code == 200
    stats = breaker.stats()[KEY]
    assert (stats.successes, stats.failures, inner.sent) == (1, 0, 4)


# -- stamina ---------------------------------------------------------------------------------------


def retry_hook(flavour: Flavour, longest_wait: float = 1.0) -> Any:
    """A stamina backoff hook that never retries an open circuit blindly (README recipe)."""

    def on(exc: Exception) -> bool | float:
        if isinstance(exc, flavour.CircuitOpenError):
            # Known down: wait for the probe if it is due soon, else fail fast (no hammering;
            # 0 means half-open with every probe slot taken: also fail fast).
            return exc.retry_after if 0 < exc.retry_after <= longest_wait else False
        return isinstance(exc, (flavour.lib.TransportError, flavour.lib.HTTPStatusError))

    return on


async def test_stamina_around_calls_counts_every_attempt_and_waits_for_the_probe_once(
    flavour: Flavour, clock: ManualClock
) -> None:
    inner = flavour.scripted("ConnectError", "ConnectError", 200)
    policy = BreakerPolicy(failure_threshold=2, recovery_timeout=0.5)
    breaker = flavour.Async(inner, policy=policy, clock=clock)
    hook = retry_hook(flavour)
    waits: list[float] = []

    def on(exc: Exception) -> bool | float:
        verdict = hook(exc)
        if not isinstance(verdict, bool):
            waits.append(verdict)
            clock.advance(verdict)  # stands in for the wait stamina skips in testing mode
        return verdict

    async with flavour.lib.AsyncClient(transport=breaker) as client:

        @stamina.retry(on=on, attempts=5)
        async def fetch() -> Any:
            response = await client.get(URL)
            return response.raise_for_status()

        with stamina.set_testing(True, attempts=5):
            response = await fetch()
    assert response.status_code == 200
    # attempt 1, 2: ConnectError (counted: the circuit opens); 3: CircuitOpenError, retried once
    # after exactly its retry_after; 4: the probe, which closes the circuit.
    assert waits == [0.5]
    stats = breaker.stats()[KEY]
    assert (stats.failures, stats.rejections, stats.successes, inner.sent) == (2, 1, 1, 3)
    assert_state(breaker, KEY, "closed")


async def test_stamina_does_not_hold_callers_on_a_long_open_circuit(
    flavour: Flavour, clock: ManualClock
) -> None:
    inner = flavour.scripted("ReadTimeout")
    breaker = flavour.Async(inner, policy=BreakerPolicy(failure_threshold=1), clock=clock)
    calls = 0
    async with flavour.lib.AsyncClient(transport=breaker) as client:

        @stamina.retry(on=retry_hook(flavour), attempts=5)
        async def fetch() -> Any:
            nonlocal calls
            calls += 1
            return await client.get(URL)

        with stamina.set_testing(True, attempts=5), pytest.raises(flavour.CircuitOpenError):
            await fetch()
    assert (calls, inner.sent) == (2, 1)  # the ReadTimeout was retried, the open circuit not


# -- hishel ----------------------------------------------------------------------------------------


def cache(flavour: Flavour, next_transport: Any, path: Path) -> Any:
    import hishel

    module = __import__(f"hishel.{flavour.name}", fromlist=["AsyncCacheTransport"])
    storage = hishel.AsyncSqliteStorage(database_path=path / "cache.db")
    return module.AsyncCacheTransport(next_transport, storage=storage)


async def test_cache_outside_serves_fresh_hits_while_open_and_they_are_not_successes(
    flavour: Flavour, clock: ManualClock, tmp_path: Path
) -> None:
    inner = flavour.scripted(200, 500)
    breaker = flavour.Async(inner, policy=BreakerPolicy(failure_threshold=2), clock=clock)
    async with flavour.lib.AsyncClient(transport=cache(flavour, breaker, tmp_path)) as client:
        first = await client.get(URL)
        assert (first.content, first.extensions["caching"]["from_cache"]) == (
            b"chunk-1chunk-2",
            False,
        )
        assert (await client.get(f"{URL}?fresh")).status_code == 500  # one failure counted
        hit = await client.get(URL)
        assert (hit.content, hit.extensions["caching"]["from_cache"]) == (b"chunk-1chunk-2", True)
        assert breaker.stats()[KEY].consecutive_failures == 1  # the hit reset nothing
        breaker.force_open(KEY)
        hit = await client.get(URL)  # served from the cache while the circuit is open
        assert hit.extensions["caching"]["from_cache"]
        with pytest.raises(flavour.CircuitOpenError):
            await client.get(f"{URL}?not-cached")
    stats = breaker.stats()[KEY]
    assert (stats.successes, stats.failures, stats.rejections, inner.sent) == (1, 1, 1, 2)


async def test_cache_inside_turns_hits_into_successes_that_hide_a_failing_host(
    flavour: Flavour, clock: ManualClock, tmp_path: Path
) -> None:
    # The wrong order, for contrast: every cache hit reaches the breaker as a 200.
    inner = flavour.scripted(200, 500, 500)
    breaker = flavour.Async(
        cache(flavour, inner, tmp_path), policy=BreakerPolicy(failure_threshold=2), clock=clock
    )
    async with flavour.lib.AsyncClient(transport=breaker) as client:
        await client.get(URL)
        for _ in range(2):
            assert (await client.get(f"{URL}?fresh")).status_code == 500
            await client.get(URL)  # a hit, counted as an upstream success
    stats = breaker.stats()[KEY]
    assert (stats.successes, stats.failures, stats.consecutive_failures) == (3, 2, 0)
    assert_state(breaker, KEY, "closed")  # two consecutive upstream failures, never seen as such


def _httpx() -> Flavour:
    from .flavours import load

    return load("httpx")
