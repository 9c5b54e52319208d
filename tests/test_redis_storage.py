"""RedisStorage against a real redis-server: shared circuits across transports and processes.

Real-time waits appear only where Redis's clock decides (an open period, a probe lease, a key's
expiry); each is a bounded poll of at most a few seconds. Everything else is driven by request
counts, gates and barriers.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
import redis
import redis.asyncio

from breaker_transport import (
    AsyncCircuitBreakerTransport,
    BreakerListener,
    BreakerPolicy,
    CircuitBreakerTransport,
    CircuitOpenError,
    CircuitState,
    StateChange,
)
from breaker_transport.storage import MemoryStorage, RedisStorage, StorageUnavailableError
from breaker_transport.storage._rules import SCRIPT

from . import redis_workers
from .redis_server import RedisServer
from .servers import FlakyServer

HOST = "http://api.example"
POLICY = BreakerPolicy(failure_threshold=3, recovery_timeout=600.0)
#: Tests that are not about Redis timeouts give Redis time: on a loaded 2-core machine the default
#: 0.25 s can pass, and the fallback to local state would then look like a sharing bug.
PATIENT = 3.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio runs on asyncio only (trio is refused: see the trio test)


def status_host(status: list[int], calls: list[str] | None = None) -> Callable[..., Any]:
    def handler(request: httpx.Request) -> httpx.Response:
        if calls is not None:
            calls.append(str(request.url))
        return httpx.Response(status[0])

    return handler


def sync_breaker(
    url: str,
    handler: Callable[..., Any],
    policy: BreakerPolicy = POLICY,
    *,
    prefix: str = "t",
    on_state_change: Callable[[StateChange], object] | None = None,
    **storage: Any,
) -> CircuitBreakerTransport:
    storage.setdefault("timeout", PATIENT)
    return CircuitBreakerTransport(
        httpx.MockTransport(handler),
        policy=policy,
        on_state_change=on_state_change,
        storage=RedisStorage(redis.Redis.from_url(url), prefix=prefix, **storage),
    )


def async_breaker(
    url: str,
    handler: Callable[..., Any],
    policy: BreakerPolicy = POLICY,
    *,
    prefix: str = "t",
    **storage: Any,
) -> AsyncCircuitBreakerTransport:
    storage.setdefault("timeout", PATIENT)
    return AsyncCircuitBreakerTransport(
        httpx.MockTransport(handler),
        policy=policy,
        storage=RedisStorage(redis.asyncio.Redis.from_url(url), prefix=prefix, **storage),
    )


def send(transport: CircuitBreakerTransport, url: str = HOST) -> int | str:
    try:
        return transport.handle_request(httpx.Request("GET", url)).status_code
    except CircuitOpenError:
        return "open"


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll in real time (for Redis's clock only), bounded."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# -- sharing ---------------------------------------------------------------------------------


def test_two_sync_transports_share_one_circuit(redis_url: str) -> None:
    calls_a: list[str] = []
    calls_b: list[str] = []
    seen_by_b: list[StateChange] = []
    a = sync_breaker(redis_url, status_host([503], calls_a))
    b = sync_breaker(redis_url, status_host([200], calls_b), on_state_change=seen_by_b.append)
    assert [send(a), send(a), send(a)] == [503, 503, 503]
    assert a.state(HOST) is CircuitState.OPEN
    # b never saw a failure of its own: its next request reads the shared state and fails fast
    assert send(b) == "open"
    assert calls_b == []
    assert [(c.old, c.new, c.reason) for c in seen_by_b] == [
        (CircuitState.CLOSED, CircuitState.OPEN, "3 consecutive failures")
    ]
    stats = b.stats()[HOST]
    assert stats.state is CircuitState.OPEN and stats.consecutive_failures == 3
    assert (stats.rejections, stats.failures) == (1, 0)  # counters are b's own
    assert a.stats()[HOST].failures == 3
    a.close()
    b.close()


@pytest.mark.anyio
async def test_two_async_transports_share_one_circuit(redis_url: str) -> None:
    calls_b: list[str] = []
    a = async_breaker(redis_url, status_host([503]))
    b = async_breaker(redis_url, status_host([200], calls_b))
    async with httpx.AsyncClient(transport=a) as client_a, httpx.AsyncClient(transport=b) as cb:
        for _ in range(3):
            assert (await client_a.get(HOST)).status_code == 503
        with pytest.raises(CircuitOpenError) as caught:
            await cb.get(HOST)
        assert caught.value.retry_after == pytest.approx(600, abs=1)
        assert calls_b == []
        assert await b.astate(HOST) is CircuitState.OPEN
        # b knows it is open now, and rejects from its mirror without asking Redis
        trips = b._storage.round_trips
        for _ in range(5):
            with pytest.raises(CircuitOpenError):
                await cb.get(HOST)
        assert b._storage.round_trips == trips


def test_round_trips_per_request(redis_url: str, redis_server: RedisServer) -> None:
    """Closed: 2 (admit, settle). Known open: 0. Ignored: 1 (nothing shared can change)."""
    status = [200]
    t = sync_breaker(redis_url, status_host(status))
    engine = t._storage
    with redis.Redis.from_url(redis_url) as admin:
        admin.script_load(SCRIPT)  # so that no NOSCRIPT retry shows in the counts
        admin.config_resetstat()
        for _ in range(10):
            assert send(t) == 200
        assert engine.round_trips == 20
        evalsha = admin.info("commandstats")["cmdstat_evalsha"]["calls"]
        assert evalsha == 20
        status[0] = 503
        for _ in range(3):
            send(t)
        before = engine.round_trips
        for _ in range(50):
            assert send(t) == "open"
        assert engine.round_trips == before  # zero round trips to reject a known-open circuit
    t.close()


def test_an_ignored_call_costs_one_round_trip(redis_url: str) -> None:
    def pool_full(request: httpx.Request) -> httpx.Response:
        raise httpx.PoolTimeout("pool full", request=request)

    t = sync_breaker(redis_url, pool_full)
    with pytest.raises(httpx.PoolTimeout):
        send(t)
    assert t._storage.round_trips == 1
    assert t.stats()[HOST].ignored == 1
    t.close()


@pytest.mark.anyio
async def test_a_streamed_body_failure_settles_in_redis(redis_url: str) -> None:
    with FlakyServer() as server:
        server.behaviour = "reset_mid_body"
        policy = BreakerPolicy(failure_threshold=2, recovery_timeout=600.0)
        a = AsyncCircuitBreakerTransport(
            policy=policy,
            storage=RedisStorage(
                redis.asyncio.Redis.from_url(redis_url), prefix="t", timeout=PATIENT
            ),
        )
        other = async_breaker(redis_url, status_host([200]), policy)
        async with httpx.AsyncClient(transport=a) as client:
            for _ in range(2):
                with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                    await client.get(server.url)
        assert await other.astate(server.url) is CircuitState.OPEN
        await other.aclose()


# -- many processes --------------------------------------------------------------------------


def test_four_processes_open_the_circuit_after_exactly_the_threshold(redis_url: str) -> None:
    """4 OS processes hammer one failing host in lock step, 4 calls in flight per round.

    With in-process state each worker would need its own 8 failures (32 reach the host); with
    shared state the host sees exactly failure_threshold = 8, and then every worker fails fast.
    """
    workers, threshold, rounds = 4, 8, 6
    ctx = multiprocessing.get_context("spawn")
    start, in_flight = ctx.Barrier(workers), ctx.Barrier(workers)
    hits = ctx.Value("i", 0)
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=redis_workers.hammer,
            args=(redis_url, threshold, rounds, start, in_flight, hits, results),
        )
        for _ in range(workers)
    ]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for p in processes:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert hits.value == threshold
    assert sum(o["failures"] for o in outcomes) == threshold
    assert all(o == {"failures": 2, "rejections": rounds - 2} for o in outcomes)


# -- half-open across workers ----------------------------------------------------------------


async def _until_half_open(transport: AsyncCircuitBreakerTransport) -> None:
    with anyio.fail_after(5):  # Redis's clock decides when the open period ends
        while await transport.astate(HOST) is not CircuitState.HALF_OPEN:
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_the_probe_limit_is_global_across_transports(redis_url: str) -> None:
    """3 transports x 20 tasks on a half-open circuit: exactly half_open_max_calls probes reach
    the hosts, which hold them until every other task was rejected."""
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=0.05, half_open_max_calls=2)
    reached: list[str] = []
    rejected: list[float] = []
    release = anyio.Event()

    async def holding_host(request: httpx.Request) -> httpx.Response:
        reached.append(str(request.url))
        await release.wait()
        return httpx.Response(200)

    # 60 concurrent admissions open up to 60 connections at once (a fallback to local state
    # would show as extra probes, so Redis gets time: PATIENT).
    transports = [
        AsyncCircuitBreakerTransport(
            httpx.MockTransport(holding_host),
            policy=policy,
            storage=RedisStorage(
                redis.asyncio.Redis.from_url(redis_url), prefix="t", timeout=PATIENT
            ),
        )
        for _ in range(3)
    ]
    opener = async_breaker(redis_url, status_host([503]), policy)
    await opener.handle_async_request(httpx.Request("GET", HOST))
    await _until_half_open(opener)

    async def one(transport: AsyncCircuitBreakerTransport) -> None:
        try:
            await transport.handle_async_request(httpx.Request("GET", HOST))
        except CircuitOpenError as exc:
            rejected.append(exc.retry_after)
        if len(reached) + len(rejected) == 60:
            release.set()

    async with anyio.create_task_group() as tg:
        for transport in transports:
            for _ in range(20):
                tg.start_soon(one, transport)
    assert len(reached) == 2
    assert rejected == [0.0] * 58
    assert not any(t._storage.down for t in transports)
    assert await opener.astate(HOST) is CircuitState.CLOSED
    for transport in [*transports, opener]:
        await transport.aclose()


@pytest.mark.anyio
async def test_a_cancelled_probe_frees_its_slot_for_every_worker(redis_url: str) -> None:
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=0.05, probe_timeout=600.0)
    entered = anyio.Event()

    async def hanging_host(request: httpx.Request) -> httpx.Response:
        entered.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    prober = AsyncCircuitBreakerTransport(
        httpx.MockTransport(hanging_host),
        policy=policy,
        storage=RedisStorage(redis.asyncio.Redis.from_url(redis_url), prefix="t", timeout=PATIENT),
    )
    other = async_breaker(redis_url, status_host([200]), policy)
    opener = async_breaker(redis_url, status_host([503]), policy)
    await opener.handle_async_request(httpx.Request("GET", HOST))
    await _until_half_open(opener)
    async with anyio.create_task_group() as tg:
        tg.start_soon(prober.handle_async_request, httpx.Request("GET", HOST))
        await entered.wait()
        with pytest.raises(CircuitOpenError):  # the slot is held
            await other.handle_async_request(httpx.Request("GET", HOST))
        tg.cancel_scope.cancel()
    # the cancelled probe released its lease in Redis at once, not after probe_timeout
    response = await other.handle_async_request(httpx.Request("GET", HOST))
    assert response.status_code == 200
    assert (await prober.astats())[HOST].ignored == 1
    for t in (prober, other, opener):
        await t.aclose()


def test_a_dead_probers_lease_expires(redis_url: str) -> None:
    """A worker process takes the only probe slot and is killed: the slot comes back after
    probe_timeout on Redis's clock, and another worker's probe closes the circuit."""
    probe_timeout = 0.5
    ctx = multiprocessing.get_context("spawn")
    holding = ctx.Event()
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=0.05, probe_timeout=probe_timeout)
    opener = sync_breaker(redis_url, status_host([503]), policy, prefix="lease")
    assert send(opener, "http://probe.example/") == 503
    worker = ctx.Process(
        target=redis_workers.hold_a_probe, args=(redis_url, probe_timeout, holding)
    )
    worker.start()
    try:
        assert holding.wait(timeout=30)
        worker.kill()
        worker.join(timeout=10)
    finally:
        if worker.is_alive():  # pragma: no cover
            worker.kill()
    killed_at = time.monotonic()
    survivor = sync_breaker(redis_url, status_host([200]), policy, prefix="lease")
    assert send(survivor, "http://probe.example/") == "open"  # the dead worker holds the slot
    wait_until(lambda: send(survivor, "http://probe.example/") == 200, timeout=5)
    assert time.monotonic() - killed_at < probe_timeout + 2
    assert survivor.state("http://probe.example") is CircuitState.CLOSED
    opener.close()
    survivor.close()


# -- operator API on the shared state --------------------------------------------------------


def test_force_open_reset_and_set_mode_act_on_the_shared_state(redis_url: str) -> None:
    calls_b: list[str] = []
    a = sync_breaker(redis_url, status_host([200]))
    b = sync_breaker(redis_url, status_host([200], calls_b), sync_interval=3600.0)
    a.force_open(HOST)
    assert send(b) == "open"
    assert b.stats()[HOST].retry_after == math.inf
    a.reset(HOST)
    # b trusts its mirror of an open circuit for sync_interval; a read refreshes it at once
    assert b.state(HOST) is CircuitState.CLOSED
    assert send(b) == 200
    a.set_mode("disabled", HOST)
    assert b.state(HOST) is CircuitState.CLOSED
    assert b.stats()[HOST].mode.value == "disabled"
    a.set_mode("enforce")  # every circuit, existing and future
    c = sync_breaker(redis_url, status_host([200]))
    assert send(c, "http://new.example") == 200
    assert c.stats()["http://new.example"].mode.value == "enforce"
    assert b.stats()[HOST].mode.value == "enforce"
    for t in (a, b, c):
        t.close()


def test_set_mode_for_every_circuit_reaches_future_circuits_of_other_workers(
    redis_url: str,
) -> None:
    a = sync_breaker(redis_url, status_host([503]))
    a.set_mode("observe")
    b = sync_breaker(redis_url, status_host([503]))
    for _ in range(5):
        assert send(b, "http://fresh.example") == 503  # observe: sent although open
    stats = b.stats()["http://fresh.example"]
    assert stats.mode.value == "observe" and stats.state is CircuitState.OPEN
    assert stats.rejections == 2 and stats.failures == 3
    a.close()
    b.close()


@pytest.mark.anyio
async def test_async_operator_calls_need_await(redis_url: str) -> None:
    a = async_breaker(redis_url, status_host([200]))
    with pytest.raises(RuntimeError, match=r"await transport\.areset"):
        a.reset(HOST)
    with pytest.raises(RuntimeError, match=r"aforce_open"):
        a.force_open(HOST)
    await a.aforce_open(HOST)
    assert await a.astate(HOST) is CircuitState.OPEN
    assert a.state(HOST) is CircuitState.OPEN  # the local view, no I/O
    await a.aset_mode("observe", HOST)
    assert (await a.astats())[HOST].mode.value == "observe"
    await a.areset()
    assert await a.astate(HOST) is CircuitState.CLOSED
    await a.aclose()


def test_a_policy_disagreement_is_warned_about_once(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    a = sync_breaker(redis_url, status_host([503]))
    b = sync_breaker(redis_url, status_host([503]), BreakerPolicy(failure_threshold=7))
    send(a)
    with caplog.at_level(logging.WARNING, logger="breaker_transport"):
        for _ in range(3):
            send(b)
    warnings = [r for r in caplog.records if "disagree on its policy" in r.getMessage()]
    assert len(warnings) == 1
    a.close()
    b.close()


# -- Redis away ------------------------------------------------------------------------------


def test_redis_killed_mid_run_and_restarted(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """No request fails because Redis died; one WARNING; the worker's pessimistic view (open)
    reaches the shared state when Redis is back."""
    status = [200]
    policy = BreakerPolicy(failure_threshold=3, recovery_timeout=600.0)
    a = sync_breaker(own_redis.url, status_host(status), policy, retry_interval=0.05)
    assert [send(a) for _ in range(3)] == [200, 200, 200]
    own_redis.kill()
    with caplog.at_level(logging.WARNING, logger="breaker_transport"):
        started = time.monotonic()
        assert [send(a) for _ in range(20)] == [200] * 20
        status[0] = 503
        assert [send(a) for _ in range(5)] == [503, 503, 503, "open", "open"]
        assert time.monotonic() - started < 5  # refused connections fail fast
    down = [r for r in caplog.records if "Redis is unavailable" in r.getMessage()]
    assert len(down) == 1 and down[0].levelno == logging.WARNING
    own_redis.start()
    time.sleep(0.06)  # retry_interval, so the next request tries Redis again
    assert send(a) == "open"  # the resync pushes the local open state; still open
    b = sync_breaker(own_redis.url, status_host([200]), policy)
    assert b.state(HOST) is CircuitState.OPEN
    assert send(b) == "open"
    assert b.stats()[HOST].retry_after == pytest.approx(600, abs=5)
    a.close()
    b.close()


def test_a_paused_redis_costs_at_most_the_breaker_timeout(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    t = sync_breaker(own_redis.url, status_host([200]), timeout=0.1, retry_interval=30.0)
    assert send(t) == 200
    with redis.Redis.from_url(own_redis.url) as admin:
        admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        with caplog.at_level(logging.WARNING, logger="breaker_transport"):
            started = time.monotonic()
            assert send(t) == 200
            assert time.monotonic() - started < 0.5
            started = time.monotonic()
            assert [send(t) for _ in range(10)] == [200] * 10
            assert time.monotonic() - started < 0.1  # away: no more waiting on Redis
        admin.execute_command("CLIENT", "UNPAUSE")
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    t.close()


@pytest.mark.anyio
async def test_async_requests_survive_a_dead_redis(own_redis: RedisServer) -> None:
    a = async_breaker(own_redis.url, status_host([200]), retry_interval=0.05)
    async with httpx.AsyncClient(transport=a) as client:
        assert (await client.get(HOST)).status_code == 200
        own_redis.kill()
        for _ in range(5):
            assert (await client.get(HOST)).status_code == 200
        with pytest.raises(StorageUnavailableError, match="applied to this worker"):
            await a.aforce_open(HOST)
        with pytest.raises(CircuitOpenError):
            await client.get(HOST)  # applied locally all the same


# -- keys ------------------------------------------------------------------------------------


def test_keys_carry_the_prefix_one_hash_tag_and_expire_when_idle(redis_url: str) -> None:
    from redis.cluster import key_slot

    status = [503]
    t = sync_breaker(redis_url, status_host(status), prefix="myapp", idle_ttl=0.5)
    assert send(t) == 503
    with redis.Redis.from_url(redis_url) as admin:
        names = sorted(k.decode() for k in admin.keys("*"))
        assert names == ["myapp:{http://api.example}"]
        assert 0 < admin.pttl(names[0]) <= 500  # closed: idle_ttl after the last settlement
        assert len({key_slot(n.encode()) for n in t._storage.keys(HOST)}) == 1
        send(t)
        send(t)  # open now: kept at least until its deadline
        assert admin.pttl(names[0]) > 599_000
        t.force_open(HOST)
        assert admin.pttl(names[0]) == -1  # forced open: never expires
        t.reset(HOST)
        status[0] = 200
        send(t)
        wait_until(lambda: admin.exists(names[0]) == 0, timeout=3)  # Redis's clock
    status[0] = 503
    send(t)
    assert t.stats()[HOST].consecutive_failures == 1  # a fresh state after expiry
    t.close()


# -- fork ------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_transport_made_before_fork_gets_its_own_connections_in_the_child(
    redis_url: str,
) -> None:
    import warnings

    t = sync_breaker(redis_url, status_host([503]), BreakerPolicy(failure_threshold=2))
    assert send(t) == 503  # the parent has a connection and a probe-member identity
    parent_id = t._storage.backend.client.client_id()
    parent_token = t._storage.token
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        pid = os.fork()
    if pid == 0:  # the child: exit without running pytest's teardown
        code = 1
        try:
            engine = t._storage
            fresh = engine.backend.client.client_id() != parent_id
            own_token = engine.token != parent_token
            opened = send(t) == 503 and t.state(HOST) is CircuitState.OPEN
            os.write(write, f"{fresh},{own_token},{opened}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    report = os.read(read, 100).decode()
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == "True,True,True"
    assert t.state(HOST) is CircuitState.OPEN  # the child's failure counted in the shared state
    assert t._storage.backend.client.client_id() == parent_id  # the parent's connection is intact
    t.close()


# -- configuration errors --------------------------------------------------------------------


def test_configuration_errors_are_clear(redis_url: str) -> None:
    sync_client = redis.Redis.from_url(redis_url)
    async_client = redis.asyncio.Redis.from_url(redis_url)
    with pytest.raises(TypeError, match="AsyncCircuitBreakerTransport needs"):
        AsyncCircuitBreakerTransport(storage=RedisStorage(sync_client))
    with pytest.raises(TypeError, match="CircuitBreakerTransport needs"):
        CircuitBreakerTransport(storage=RedisStorage(async_client))
    with pytest.raises(TypeError, match=r"needs a redis\.Redis"):
        RedisStorage("redis://localhost")
    with pytest.raises(ValueError, match="prefix may not contain"):
        RedisStorage(sync_client, prefix="a{b}")
    with pytest.raises(ValueError, match=r"timeout must be .* got 0"):
        RedisStorage(sync_client, timeout=0)
    with pytest.raises(TypeError, match="storage must be"):
        CircuitBreakerTransport(storage="redis")  # type: ignore[arg-type]
    shared = RedisStorage(sync_client)
    first = CircuitBreakerTransport(storage=shared)
    with pytest.raises(ValueError, match="already serves a transport"):
        CircuitBreakerTransport(storage=shared)
    first.close()
    sync_client.close()
    assert CircuitBreakerTransport(storage=MemoryStorage())._storage is None


def test_async_redis_storage_under_trio_is_refused(redis_url: str) -> None:
    import trio

    async def construct() -> None:
        RedisStorage(redis.asyncio.Redis.from_url(redis_url))

    with pytest.raises(RuntimeError, match="asyncio only"):
        trio.run(construct)

    transport = async_breaker(redis_url, status_host([200]))  # made outside any loop

    async def use() -> None:
        await transport.handle_async_request(httpx.Request("GET", HOST))

    with pytest.raises(RuntimeError, match="asyncio only"):
        trio.run(use)

    async def in_memory() -> int:  # the default storage keeps working under trio
        plain = AsyncCircuitBreakerTransport(httpx.MockTransport(status_host([200])))
        return (await plain.handle_async_request(httpx.Request("GET", HOST))).status_code

    assert trio.run(in_memory) == 200


@pytest.fixture(autouse=True)
def _no_fallback_surprises(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A script error would show as an ERROR or an unexpected fallback: fail on it."""
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


# -- the other transports that share an engine -----------------------------------------------


def test_a_wrap_twin_shares_the_redis_circuits_but_sends_through_its_own_inner(
    redis_url: str,
) -> None:
    calls_a: list[str] = []
    calls_twin: list[str] = []
    a = sync_breaker(redis_url, status_host([503], calls_a))
    twin = a.wrap(httpx.MockTransport(status_host([503], calls_twin)))
    assert [send(a), send(twin), send(a)] == [503, 503, 503]
    assert (len(calls_a), len(calls_twin)) == (2, 1)
    assert send(twin) == "open"
    other = sync_breaker(redis_url, status_host([200]))
    assert other.state(HOST) is CircuitState.OPEN
    a.close()
    other.close()


def test_the_httpx2_flavour_shares_state_with_the_httpx_one(redis_url: str) -> None:
    from .flavours import HTTPX2_RUNS, load

    if not HTTPX2_RUNS:
        pytest.skip("httpx2 needs Python 3.11+")
    flavour = load("httpx2")
    breaker2 = flavour.Sync(
        flavour.mock(503, 503, 503),
        policy=POLICY,
        storage=RedisStorage(redis.Redis.from_url(redis_url), prefix="t", timeout=PATIENT),
    )
    for _ in range(3):
        breaker2.handle_request(flavour.lib.Request("GET", HOST))
    with pytest.raises(flavour.CircuitOpenError):
        breaker2.handle_request(flavour.lib.Request("GET", HOST))
    plain = sync_breaker(redis_url, status_host([200]))
    assert send(plain) == "open"
    breaker2.close()
    plain.close()


def test_a_flapping_redis_logs_one_warning_and_never_fails_a_request(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    t = sync_breaker(own_redis.url, status_host([200]), retry_interval=0.01)
    results = []
    with caplog.at_level(logging.DEBUG, logger="breaker_transport"):
        for _ in range(3):  # down, up, down, up, ...: bounded, a few cycles
            own_redis.kill()
            results += [send(t) for _ in range(3)]
            own_redis.start()
            time.sleep(0.02)  # past retry_interval: the next request tries Redis again
            results += [send(t) for _ in range(3)]
    assert results == [200] * 18
    down = [r for r in caplog.records if "Redis is unavailable" in r.getMessage()]
    assert [r.levelno for r in down] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    back = [r for r in caplog.records if "Redis is back" in r.getMessage()]
    assert len(back) == 3
    assert t._storage.down is False
    t.close()


# -- events produced before the round trip ---------------------------------------------------


class _Evictions(BreakerListener):
    def __init__(self) -> None:
        self.keys: list[str] = []

    def on_evict(self, key: str) -> None:
        self.keys.append(key)


def test_an_eviction_made_before_the_round_trip_is_reported(redis_url: str) -> None:
    """Review finding: the events of the locked step before the Redis call (an eviction, a
    policy notice, an expired probe) were drained, then dropped by the drain after the call."""
    evictions = _Evictions()
    transport = CircuitBreakerTransport(
        httpx.MockTransport(status_host([200])),
        max_circuits=1,
        listeners=[evictions],
        storage=RedisStorage(redis.Redis.from_url(redis_url), prefix="ev", timeout=PATIENT),
    )
    send(transport, "http://a.test/")
    send(transport, "http://b.test/")  # makes b's circuit, evicting a's, then asks Redis
    assert evictions.keys == ["http://a.test"]
    transport.close()


@pytest.mark.anyio
async def test_an_eviction_made_before_the_round_trip_is_reported_async(redis_url: str) -> None:
    evictions = _Evictions()
    transport = AsyncCircuitBreakerTransport(
        httpx.MockTransport(status_host([200])),
        max_circuits=1,
        listeners=[evictions],
        storage=RedisStorage(redis.asyncio.Redis.from_url(redis_url), prefix="ev", timeout=PATIENT),
    )
    for url in ("http://a.test/", "http://b.test/"):
        await transport.handle_async_request(httpx.Request("GET", url))
    assert evictions.keys == ["http://a.test"]
    await transport.aclose()


def test_an_inner_transport_returning_no_response_settles_the_call(redis_url: str) -> None:
    """As in the in-memory path: the call is counted (ignored), not left in flight."""

    class Broken(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return None  # type: ignore[return-value]

    transport = CircuitBreakerTransport(
        Broken(),
        storage=RedisStorage(redis.Redis.from_url(redis_url), prefix="none", timeout=PATIENT),
    )
    with pytest.raises(AttributeError):
        transport.handle_request(httpx.Request("GET", HOST))
    stats = transport.stats()
    (circuit,) = stats.values()
    assert (circuit.ignored, circuit.in_flight) == (1, 0)
    transport.close()


def test_every_kind_of_round_trip_reloads_a_script_redis_lost(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """After ``SCRIPT FLUSH`` (a restart or failover does the same): the admission with the
    default-mode refresh, the plain admission and the operator reads each load it again, and
    none of them falls back to local state."""
    client = redis.Redis.from_url(redis_url)
    transport = sync_breaker(redis_url, status_host([503]), sync_interval=3600.0)
    with caplog.at_level(logging.WARNING, logger="breaker_transport"):
        client.script_flush()
        assert send(transport) == 503  # the first admission also reads the default mode
        client.script_flush()
        assert send(transport) == 503  # EVALSHA alone
        client.script_flush()
        assert transport.stats()[HOST].consecutive_failures == 2  # the operator read
    assert [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()] == []
    transport.close()
    client.close()


@pytest.mark.anyio
async def test_every_kind_of_async_round_trip_reloads_a_script_redis_lost(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_url)
    transport = async_breaker(redis_url, status_host([503]), sync_interval=3600.0)
    with caplog.at_level(logging.WARNING, logger="breaker_transport"):
        for _ in range(2):  # the first admission also reads the default mode; then EVALSHA
            client.script_flush()
            response = await transport.handle_async_request(httpx.Request("GET", HOST))
            assert response.status_code == 503
        client.script_flush()
        assert (await transport.astats())[HOST].consecutive_failures == 2
    assert [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()] == []
    await transport.aclose()
    client.close()
