"""The sync transport: the same behaviour for httpx.Client, correct when shared across threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from breaker_transport import (
    BreakerPolicy,
    CircuitBreakerTransport,
    CircuitOpenError,
    CircuitState,
)
from breaker_transport.testing import ManualClock

from .helpers import Reply, StreamingTransport, fixed

URL = "https://api.example.com/"
KEY = "https://api.example.com"


def test_opens_rejects_and_recovers(clock: ManualClock) -> None:
    status = {"code": 500}
    inner = httpx.MockTransport(lambda r: httpx.Response(status["code"]))
    policy = BreakerPolicy(failure_threshold=2, recovery_timeout=5.0)
    with httpx.Client(
        transport=CircuitBreakerTransport(inner, policy=policy, clock=clock)
    ) as client:
        transport = client._transport
        assert isinstance(transport, CircuitBreakerTransport)
        client.get(URL)
        client.get(URL)
        with pytest.raises(CircuitOpenError) as caught:
            client.get(URL)
        assert caught.value.retry_after == pytest.approx(5.0)
        clock.advance(5.0)
        status["code"] = 200
        assert client.get(URL).status_code == 200
        assert transport.state(URL) is CircuitState.CLOSED


def test_failures_from_16_threads_are_all_counted(clock: ManualClock) -> None:
    transport = CircuitBreakerTransport(
        fixed(503),
        policy=BreakerPolicy(
            failure_threshold=None,
            failure_rate_threshold=1.0,
            minimum_calls=10**6,
            window_size=10**6,
        ),
        clock=clock,
    )
    per_thread = 250
    start = threading.Barrier(16)

    def hammer() -> int:
        start.wait()
        with httpx.Client(transport=transport) as client:
            for _ in range(per_thread):
                assert client.get(URL).status_code == 503
        return per_thread

    with ThreadPoolExecutor(16) as pool:
        sent = sum(pool.map(lambda _: hammer(), range(16)))
    stats = transport.stats()[KEY]
    assert sent == 16 * per_thread
    assert stats.failures == sent
    assert stats.consecutive_failures == sent
    assert stats.window_calls == sent
    assert stats.in_flight == 0


def test_16_threads_through_the_opening_threshold_see_one_transition(clock: ManualClock) -> None:
    changes: list[object] = []
    transport = CircuitBreakerTransport(
        fixed(503),
        policy=BreakerPolicy(failure_threshold=50),
        clock=clock,
        on_state_change=changes.append,
    )
    start = threading.Barrier(16)
    outcomes: list[str] = []
    lock = threading.Lock()

    def hammer() -> None:
        start.wait()
        with httpx.Client(transport=transport) as client:
            for _ in range(20):
                try:
                    client.get(URL)
                    result = "sent"
                except CircuitOpenError:
                    result = "rejected"
                with lock:
                    outcomes.append(result)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: hammer(), range(16)))
    stats = transport.stats()[KEY]
    assert len(changes) == 1
    assert stats.state is CircuitState.OPEN
    assert stats.failures == outcomes.count("sent")
    assert stats.rejections == outcomes.count("rejected")
    assert stats.failures >= 50
    assert stats.failures + stats.rejections == 16 * 20


def test_sync_close_is_idempotent_and_forwards(clock: ManualClock) -> None:
    inner = StreamingTransport(lambda r: Reply())
    transport = CircuitBreakerTransport(inner, clock=clock)
    with transport:
        with httpx.Client(transport=transport) as client:
            client.get(URL)
    assert inner.closed == 1
    transport.close()
    assert inner.closed == 1


def test_default_inner_transport_is_httpx_http_transport() -> None:
    transport = CircuitBreakerTransport()
    assert isinstance(transport, httpx.BaseTransport)
    assert isinstance(transport._inner, httpx.HTTPTransport)
    transport.close()


def test_an_async_only_transport_is_refused_with_a_clear_error() -> None:
    with pytest.raises(TypeError, match="has no handle_request"):
        CircuitBreakerTransport(httpx.AsyncHTTPTransport())  # type: ignore[arg-type]
