"""The async transport end to end through httpx.AsyncClient, under asyncio and trio."""

from __future__ import annotations

import contextlib
import logging
import math

import anyio
import httpx
import pytest

from breaker_transport import (
    AsyncCircuitBreakerTransport,
    BreakerPolicy,
    CallEvent,
    CircuitOpenError,
    CircuitState,
    FailureKind,
    Outcome,
    StateChange,
)
from breaker_transport.testing import ManualClock

from .helpers import GatedTransport, Recorder, Reply, StreamingTransport, fixed

pytestmark = pytest.mark.anyio

URL = "https://api.example.com/data"
KEY = "https://api.example.com"


def breaker(
    inner: httpx.AsyncBaseTransport, clock: ManualClock, **kw: object
) -> AsyncCircuitBreakerTransport:
    policy = kw.pop("policy", BreakerPolicy(failure_threshold=3, recovery_timeout=10.0))
    return AsyncCircuitBreakerTransport(inner, policy=policy, clock=clock, **kw)  # type: ignore[arg-type]


async def test_5xx_opens_the_circuit_and_the_caller_gets_the_response_unchanged(
    clock: ManualClock,
) -> None:
    inner = fixed(503, b"down", **{"x-upstream": "yes"})
    transport = breaker(inner, clock)
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            response = await client.get(URL)
            assert response.status_code == 503
            assert response.content == b"down"
            assert response.headers["x-upstream"] == "yes"
        assert transport.state(URL) is CircuitState.OPEN
        with pytest.raises(CircuitOpenError) as caught:
            await client.get(URL)
    error = caught.value
    assert isinstance(error, httpx.TransportError)
    assert error.key == KEY
    assert error.retry_after == pytest.approx(10.0)
    assert error.request.url == URL
    assert KEY in str(error)
    assert "10.000s" in str(error)
    stats = transport.stats()[KEY]
    assert (stats.failures, stats.rejections, stats.successes) == (3, 1, 0)


async def test_4xx_and_429_are_successes_by_default(clock: ManualClock) -> None:
    for status in (400, 404, 429):
        transport = breaker(fixed(status), clock, policy=BreakerPolicy(failure_threshold=1))
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(3):
                assert (await client.get(URL)).status_code == status
        assert transport.state(URL) is CircuitState.CLOSED
        assert transport.stats()[KEY].successes == 3


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.ReadError("reset"),
        httpx.ReadTimeout("slow read"),
        httpx.WriteError("broken pipe"),
        httpx.WriteTimeout("slow write"),
        httpx.RemoteProtocolError("garbage"),
    ],
)
async def test_network_exceptions_count_and_are_re_raised_unchanged(
    clock: ManualClock, exc: Exception
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    transport = breaker(
        httpx.MockTransport(handler), clock, policy=BreakerPolicy(failure_threshold=2)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(2):
            with pytest.raises(type(exc)) as caught:
                await client.get(URL)
            assert caught.value is exc
        with pytest.raises(CircuitOpenError):
            await client.get(URL)
    assert transport.stats()[KEY].failures == 2


@pytest.mark.parametrize(
    "exc",
    [
        httpx.PoolTimeout("pool full"),
        httpx.LocalProtocolError("bad header"),
        httpx.UnsupportedProtocol("ftp"),
        httpx.ProxyError("407"),
        ValueError("a bug in a custom inner transport"),
        AssertionError("respx: not mocked"),
    ],
)
async def test_exceptions_that_are_not_the_hosts_fault_are_ignored_and_re_raised(
    clock: ManualClock, exc: Exception
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    transport = breaker(
        httpx.MockTransport(handler), clock, policy=BreakerPolicy(failure_threshold=1)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            with pytest.raises(type(exc)) as caught:
                await client.get(URL)
            assert caught.value is exc
    stats = transport.stats()[KEY]
    assert stats.state is CircuitState.CLOSED
    assert (stats.ignored, stats.failures) == (3, 0)


async def test_ignored_never_resets_the_consecutive_count(clock: ManualClock) -> None:
    script = iter([503, "pool", 503, "pool", 503])

    def handler(request: httpx.Request) -> httpx.Response:
        step = next(script)
        if step == "pool":
            raise httpx.PoolTimeout("full")
        return httpx.Response(int(step))

    transport = breaker(httpx.MockTransport(handler), clock)
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(5):
            with contextlib.suppress(httpx.PoolTimeout):
                await client.get(URL)
    assert transport.state(URL) is CircuitState.OPEN


async def test_failure_exceptions_and_status_codes_are_configurable(clock: ManualClock) -> None:
    policy = BreakerPolicy(
        failure_threshold=2,
        failure_status_codes={429},
        failure_exceptions={FailureKind.POOL_TIMEOUT, KeyError},
    )
    answers = iter([httpx.Response(429), httpx.PoolTimeout("x"), httpx.Response(500)])

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    transport = breaker(httpx.MockTransport(handler), clock, policy=policy)
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(URL)
        with pytest.raises(httpx.PoolTimeout):
            await client.get(URL)
        assert transport.state(URL) is CircuitState.OPEN
    transport.reset()
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(URL)).status_code == 500  # 5xx is no longer a failure
    assert transport.stats()[KEY].successes == 1


async def test_classify_overrides_the_defaults_for_the_calls_it_recognises(
    clock: ManualClock,
) -> None:
    seen: list[tuple[int | None, str | None]] = []

    def classify(
        request: httpx.Request, response: httpx.Response | None, exc: BaseException | None
    ) -> Outcome | None:
        seen.append(
            (
                response.status_code if response is not None else None,
                type(exc).__name__ if exc else None,
            )
        )
        if response is not None and response.headers.get("x-maintenance"):
            return Outcome.IGNORED
        if (
            response is not None
            and response.status_code == 200
            and response.headers.get("x-degraded")
        ):
            return Outcome.FAILURE
        return None

    answers = iter(
        [
            httpx.Response(503, headers={"x-maintenance": "1"}),
            httpx.Response(200, headers={"x-degraded": "1"}),
            httpx.Response(503),
        ]
    )
    policy = BreakerPolicy(failure_threshold=2, classify=classify)
    transport = breaker(httpx.MockTransport(lambda r: next(answers)), clock, policy=policy)
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            await client.get(URL)
    stats = transport.stats()[KEY]
    assert (stats.ignored, stats.failures, stats.state) == (1, 2, CircuitState.OPEN)
    assert seen == [(503, None), (200, None), (503, None)]  # once per call


async def test_broken_classify_is_logged_and_the_defaults_apply(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    def classify(request: object, response: object, exc: object) -> Outcome | None:
        raise RuntimeError("classifier bug")

    transport = breaker(
        fixed(503), clock, policy=BreakerPolicy(failure_threshold=1, classify=classify)
    )
    with caplog.at_level(logging.ERROR, logger="breaker_transport"):
        async with httpx.AsyncClient(transport=transport) as client:
            assert (await client.get(URL)).status_code == 503
    assert transport.state(URL) is CircuitState.OPEN
    assert "classify raised" in caplog.text


async def test_hosts_are_isolated(clock: ManualClock) -> None:
    inner = httpx.MockTransport(
        lambda r: httpx.Response(503 if r.url.host == "bad.example" else 200)
    )
    transport = breaker(inner, clock, policy=BreakerPolicy(failure_threshold=1))
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("https://bad.example/")
        with pytest.raises(CircuitOpenError):
            await client.get("https://bad.example/")
        for _ in range(3):
            assert (await client.get("https://good.example/")).status_code == 200
        assert (await client.get("http://bad.example/")).status_code == 503  # another origin
    assert transport.state("https://bad.example") is CircuitState.OPEN
    assert transport.state("https://good.example") is CircuitState.CLOSED


async def test_per_host_policies_and_precedence(clock: ManualClock) -> None:
    transport = breaker(
        fixed(503),
        clock,
        policy=BreakerPolicy(failure_threshold=4),
        per_host={
            "api.example.com": BreakerPolicy(failure_threshold=2),
            "api.example.com:8443": BreakerPolicy(failure_threshold=1),
            "*.example.com": BreakerPolicy(failure_threshold=3),
            "*.eu.example.com": BreakerPolicy(failure_threshold=5),
        },
    )

    async def failures_to_open(url: str) -> int:
        async with httpx.AsyncClient(transport=transport) as client:
            for n in range(1, 10):
                await client.get(url)
                if transport.state(url) is CircuitState.OPEN:
                    return n
        raise AssertionError("never opened")

    assert await failures_to_open("https://API.example.com/") == 2
    assert await failures_to_open("https://api.example.com:8443/") == 1
    assert await failures_to_open("https://a.b.example.com/") == 3
    assert await failures_to_open("https://x.eu.example.com/") == 5
    assert await failures_to_open("https://example.com/") == 4  # the wildcard does not match it
    assert await failures_to_open("https://other.test/") == 4


async def test_per_host_host_port_matches_the_effective_default_port(clock: ManualClock) -> None:
    transport = breaker(
        fixed(503), clock, per_host={"api.example.com:443": BreakerPolicy(failure_threshold=1)}
    )
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("https://api.example.com/")
    assert transport.state(KEY) is CircuitState.OPEN


async def test_half_open_probe_success_closes_and_failure_reopens(clock: ManualClock) -> None:
    status = {"code": 503}
    inner = httpx.MockTransport(lambda r: httpx.Response(status["code"]))
    changes: list[StateChange] = []
    transport = breaker(
        inner,
        clock,
        policy=BreakerPolicy(failure_threshold=1, recovery_timeout=10.0),
        on_state_change=changes.append,
    )
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(URL)
        clock.advance(10.0)
        assert (await client.get(URL)).status_code == 503  # the probe fails
        assert transport.state(URL) is CircuitState.OPEN
        clock.advance(9.9)
        with pytest.raises(CircuitOpenError) as caught:
            await client.get(URL)
        assert caught.value.retry_after == pytest.approx(0.1)
        clock.advance(0.1)
        status["code"] = 200
        response = await client.get(URL)
        assert response.extensions["circuit_breaker"] == {
            "key": KEY,
            "state": CircuitState.HALF_OPEN,
        }
        assert transport.state(URL) is CircuitState.CLOSED
    assert [(c.old.value, c.new.value) for c in changes] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert [c.generation for c in changes] == [1, 2, 3, 4, 5]
    assert changes[0].at == 1000.0
    assert changes[-1].reason == "probe succeeded"


async def test_half_open_admits_exactly_half_open_max_calls_of_100_concurrent_tasks(
    clock: ManualClock,
) -> None:
    policy = BreakerPolicy(
        failure_threshold=1, recovery_timeout=10.0, half_open_max_calls=3, success_threshold=3
    )
    transport = breaker(fixed(503), clock, policy=policy)
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(URL)  # opens
    clock.advance(10.0)
    gate = GatedTransport()
    transport._inner = gate  # from now on every call that gets through is held at the gate
    results = {"rejected": 0, "ok": 0}
    retry_afters: set[float] = set()

    def maybe_release() -> None:
        # Release the probes only once all 100 tasks were either admitted or rejected.
        if gate.entered + results["rejected"] == 100:
            gate.gate.set()

    gate.on_enter = maybe_release

    async def one(client: httpx.AsyncClient) -> None:
        try:
            await client.get(URL)
            results["ok"] += 1
        except CircuitOpenError as error:
            retry_afters.add(error.retry_after)
            results["rejected"] += 1
            maybe_release()

    async with httpx.AsyncClient(transport=transport) as client, anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(one, client)
    assert gate.entered == 3
    assert results == {"rejected": 97, "ok": 3}
    assert retry_afters == {0.0}  # half-open with every slot taken
    assert transport.state(URL) is CircuitState.CLOSED
    stats = transport.stats()[KEY]
    assert (stats.successes, stats.rejections, stats.in_flight) == (3, 97, 0)


async def test_a_probe_cancelled_mid_flight_frees_its_slot_and_counts_as_ignored(
    clock: ManualClock,
) -> None:
    gate = GatedTransport()
    transport = breaker(fixed(503), clock, policy=BreakerPolicy(failure_threshold=1))
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(URL)
    clock.advance(60.0)
    transport._inner = gate
    async with httpx.AsyncClient(transport=transport) as client:
        with anyio.move_on_after(5) as scope:
            async with anyio.create_task_group() as tg:
                entered = anyio.Event()
                gate.on_enter = entered.set

                async def probe() -> None:
                    await client.get(URL)

                tg.start_soon(probe)
                await entered.wait()
                assert transport.stats()[KEY].in_flight == 1
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
        stats = transport.stats()[KEY]
        assert (stats.state, stats.ignored, stats.in_flight) == (CircuitState.HALF_OPEN, 1, 0)
        transport._inner = fixed(200)
        assert (await client.get(URL)).status_code == 200  # the slot is free for the next probe
    assert transport.state(URL) is CircuitState.CLOSED


async def test_stale_in_flight_call_cannot_move_a_newer_state(clock: ManualClock) -> None:
    gate = GatedTransport(status=503)
    transport = breaker(
        gate, clock, policy=BreakerPolicy(failure_threshold=1, recovery_timeout=1.0)
    )
    async with httpx.AsyncClient(transport=transport) as client, anyio.create_task_group() as tg:
        entered = anyio.Event()
        gate.on_enter = entered.set
        tg.start_soon(client.get, URL)  # admitted while closed, held
        await entered.wait()
        transport.force_open(URL)
        transport.reset(URL)  # closed again, a newer generation
        transport._inner = fixed(200)
        await client.get(URL)
        gate.gate.set()  # the old call now fails with 503
    stats = transport.stats()[KEY]
    assert (
        stats.state is CircuitState.CLOSED
    )  # a failure from before the transition did not open it
    assert stats.failures == 1  # but it is counted
    assert stats.in_flight == 0


async def test_fallback_builds_the_response_while_open(clock: ManualClock) -> None:
    def fallback(request: httpx.Request, error: CircuitOpenError) -> httpx.Response:
        return httpx.Response(
            503, headers={"Retry-After": str(math.ceil(error.retry_after))}, text="cached"
        )

    transport = breaker(
        fixed(500), clock, policy=BreakerPolicy(failure_threshold=1), fallback=fallback
    )
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(URL)
        response = await client.get(URL)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "60"
    assert response.text == "cached"
    assert response.extensions["circuit_breaker"]["rejected"] is True
    assert transport.stats()[KEY].rejections == 1


async def test_fallback_errors_reach_the_caller(clock: ManualClock) -> None:
    def fallback(request: httpx.Request, error: CircuitOpenError) -> httpx.Response:
        raise LookupError("no cached copy")

    transport = breaker(
        fixed(500), clock, policy=BreakerPolicy(failure_threshold=1), fallback=fallback
    )
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(URL)
        with pytest.raises(LookupError, match="no cached copy"):
            await client.get(URL)
    assert transport.stats()[KEY].rejections == 1


async def test_fallback_must_return_a_response(clock: ManualClock) -> None:
    transport = breaker(
        fixed(500), clock, policy=BreakerPolicy(failure_threshold=1), fallback=lambda r, e: "nope"
    )
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(URL)
        with pytest.raises(TypeError, match=r"fallback must return an httpx.Response, got 'nope'"):
            await client.get(URL)


async def test_listeners_see_transitions_and_calls_and_a_failing_one_breaks_nothing(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(change: StateChange) -> None:
        raise RuntimeError("listener bug")

    recorder = Recorder()
    transport = breaker(
        fixed(503),
        clock,
        policy=BreakerPolicy(failure_threshold=2),
        on_state_change=explode,
        listeners=[recorder],
    )
    with caplog.at_level(logging.INFO, logger="breaker_transport"):
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get(URL)
            await client.get(URL)
            with pytest.raises(CircuitOpenError):
                await client.get(URL)
    assert [(c.old, c.new) for c in recorder.changes] == [(CircuitState.CLOSED, CircuitState.OPEN)]
    assert [e.result for e in recorder.calls] == ["failure", "failure", "rejected"]
    assert "listener bug" in caplog.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("closed -> open" in r.getMessage() for r in warnings)


async def test_listeners_get_real_frozen_call_events(clock: ManualClock) -> None:
    # The transport builds them without the dataclass __init__ (for speed): still the same thing.
    recorder = Recorder()
    transport = breaker(fixed(200), clock, listeners=[recorder])
    async with httpx.AsyncClient(transport=transport) as client:
        clock.advance(0.0)
        await client.get(URL)
    (event,) = recorder.calls
    assert type(event) is CallEvent
    assert event == CallEvent(KEY, "success", CircuitState.CLOSED, 0.0, False, False, False)
    assert hash(event) == hash(CallEvent(KEY, "success", CircuitState.CLOSED, 0.0))
    with pytest.raises(AttributeError):
        event.result = "failure"  # type: ignore[misc]


async def test_stats_reset_and_force_open(clock: ManualClock) -> None:
    transport = breaker(fixed(200), clock)
    assert transport.state("https://nobody.example") is CircuitState.CLOSED
    assert transport.stats() == {}
    transport.force_open("https://api.example.com/some/path?q=1")
    stats = transport.stats()
    assert list(stats) == [KEY]
    assert stats[KEY].retry_after == math.inf
    assert stats[KEY].forced_open
    async with httpx.AsyncClient(transport=transport) as client:
        clock.advance(1e6)  # forced open ignores the recovery timeout
        with pytest.raises(CircuitOpenError, match="forced open"):
            await client.get(URL)
        transport.reset(KEY)
        assert (await client.get(URL)).status_code == 200
        transport.force_open("custom-key")  # a string without :// is a key as it is
    assert transport.state("custom-key") is CircuitState.OPEN
    transport.reset()
    assert all(s.state is CircuitState.CLOSED for s in transport.stats().values())
    assert transport.stats()[KEY].successes == 0  # counters cleared
    assert transport.state(httpx.URL(URL)) is CircuitState.CLOSED


async def test_bypass_and_per_request_key(clock: ManualClock) -> None:
    transport = breaker(fixed(503), clock, policy=BreakerPolicy(failure_threshold=1))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get(URL, extensions={"circuit_breaker": {"bypass": True}})
        assert response.status_code == 503
        assert response.extensions["circuit_breaker"]["bypassed"] is True
        assert transport.stats() == {}
        await client.get(URL, extensions={"circuit_breaker": {"key": "payments"}})
        assert transport.state("payments") is CircuitState.OPEN
        assert transport.state(URL) is CircuitState.CLOSED
        with pytest.raises(CircuitOpenError) as caught:
            await client.get(
                "https://elsewhere.example/", extensions={"circuit_breaker": {"key": "payments"}}
            )
        assert caught.value.key == "payments"
        with pytest.raises(ValueError, match=r"unknown option\(s\) \['bypas'\]"):
            await client.get(URL, extensions={"circuit_breaker": {"bypas": True}})
        with pytest.raises(TypeError, match=r"\"bypass\"\] must be a bool, got 'yes'"):
            await client.get(URL, extensions={"circuit_breaker": {"bypass": "yes"}})


async def test_custom_key_function_and_its_failures(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    def by_tenant(request: httpx.Request) -> str:
        tenant = request.headers.get("x-tenant")
        if tenant == "boom":
            raise KeyError("no tenant")
        if tenant == "int":
            return 42  # type: ignore[return-value]
        return f"tenant:{tenant}"

    transport = breaker(fixed(200), clock, key=by_tenant)
    with caplog.at_level(logging.ERROR, logger="breaker_transport"):
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get(URL, headers={"x-tenant": "a"})
            await client.get(URL, headers={"x-tenant": "boom"})
            await client.get(URL, headers={"x-tenant": "boom"})
            await client.get(URL, headers={"x-tenant": "int"})
    assert set(transport.stats()) == {"tenant:a", KEY}
    assert transport.stats()[KEY].successes == 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2  # once per kind of error, not once per request
    assert "key= callable raised" in errors[0].getMessage()
    assert "returned 42" in errors[1].getMessage()


async def test_response_extension_names_the_key_and_admission_state(clock: ManualClock) -> None:
    transport = breaker(fixed(200), clock)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("https://User:pw@API.Example.COM.:443/x")
    assert response.extensions["circuit_breaker"] == {"key": KEY, "state": CircuitState.CLOSED}


async def test_accounting_adds_up(clock: ManualClock) -> None:
    answers = iter([200, 503, "cancel", 404, 503, 503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if answer == "cancel":
            raise httpx.PoolTimeout("neutral")
        return httpx.Response(int(answer))

    transport = breaker(
        httpx.MockTransport(handler), clock, policy=BreakerPolicy(failure_threshold=2)
    )
    made = 0
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(9):
            made += 1
            with contextlib.suppress(CircuitOpenError, httpx.PoolTimeout):
                await client.get(URL)
    s = transport.stats()[KEY]
    assert s.successes + s.failures + s.ignored + s.rejections == made
    assert (s.successes, s.failures, s.ignored, s.rejections, s.in_flight) == (2, 3, 1, 3, 0)


async def test_close_is_idempotent_and_forwards(clock: ManualClock) -> None:
    inner = StreamingTransport(lambda r: Reply())
    transport = breaker(inner, clock)
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(URL)
    assert inner.closed == 1
    await transport.aclose()
    await transport.aclose()
    assert inner.closed == 1


async def test_the_async_transport_has_the_httpx_base_class() -> None:
    transport = AsyncCircuitBreakerTransport()
    assert isinstance(transport, httpx.AsyncBaseTransport)
    assert isinstance(transport._inner, httpx.AsyncHTTPTransport)
    await transport.aclose()
