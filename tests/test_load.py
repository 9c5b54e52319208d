"""Load on real sockets: a thousand concurrent tasks (or 32 threads) through one transport to 50
servers on 127.0.0.1, some of them failing. Every request a caller made must be accounted for
exactly once, and ``stats()`` must agree with what the callers saw.

The pool limits are explicit and larger than the concurrency, so no request can fail with a
PoolTimeout (which would be ignored, and would hide a miscount). Below the one breaker transport,
the async test keeps one httpx pool per origin (as ``mounts=`` would): httpcore's single pool does
work per request that grows with the number of requests in flight, and with 1,000 of them it took
103 s for 3,000 requests and failed 27 with ReadError, with no breaker involved (measured on the
2-core CI machine); one pool per origin takes about 5 s. The breaker's clock is a
ManualClock that never moves, so no circuit goes half-open during the run: the outcome per host is
deterministic even though the interleaving is not.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator

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

from .servers import ServerFarm

HOSTS = 50
TASKS = 1000
REQUESTS_PER_TASK = 3
THREADS = 32
REQUESTS_PER_THREAD = 25
THRESHOLD = 5
#: 35 healthy hosts, 10 answering 503, 5 resetting the connection mid-body
BEHAVIOURS = ["ok"] * 35 + ["error"] * 10 + ["reset"] * 5
LIMITS = httpx.Limits(max_connections=TASKS + 50, max_keepalive_connections=TASKS + 50)
TIMEOUT = httpx.Timeout(30.0, pool=60.0)
POLICY = BreakerPolicy(failure_threshold=THRESHOLD, recovery_timeout=60.0)

pytestmark = pytest.mark.load


@pytest.fixture(scope="module")
def farm() -> Iterator[ServerFarm]:
    with ServerFarm(BEHAVIOURS) as running:
        yield running


class PoolPerOrigin(httpx.AsyncBaseTransport):
    """One ``httpx.AsyncHTTPTransport`` per origin, created on first use."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str, int | None], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin = (request.url.scheme, request.url.host, request.url.port)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = httpx.AsyncHTTPTransport(limits=LIMITS)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()


def _tally_key(outcome: object) -> str:
    if isinstance(outcome, CircuitOpenError):
        return "rejected"
    if isinstance(outcome, httpx.Response):
        return "ok" if outcome.status_code == 200 else "5xx"
    if isinstance(outcome, (httpx.ReadError, httpx.RemoteProtocolError)):
        return "reset"
    raise AssertionError(f"unexpected outcome {outcome!r}")


def _check(
    transport: AsyncCircuitBreakerTransport | CircuitBreakerTransport,
    farm: ServerFarm,
    seen: dict[str, collections.Counter[str]],
    hits_before: list[int],
    per_host: int,
) -> None:
    stats = transport.stats()
    assert set(stats) == set(farm.urls())
    for index, url in enumerate(farm.urls()):
        got = seen[url]
        s = stats[url]
        behaviour = BEHAVIOURS[index]
        # every request is exactly one of success, failure, ignored, rejection; none in flight
        assert sum(got.values()) == per_host
        assert s.successes + s.failures + s.ignored + s.rejections == per_host
        assert (s.successes, s.failures, s.ignored, s.rejections, s.in_flight) == (
            got["ok"],
            got["5xx"] + got["reset"],
            0,
            got["rejected"],
            0,
        ), (url, behaviour, got, s)
        # the server saw exactly the requests that were not rejected
        assert farm.hits[index] - hits_before[index] == per_host - got["rejected"]
        if behaviour == "ok":
            assert (s.state, s.successes) == (CircuitState.CLOSED, per_host)
        else:
            # opened at the threshold; calls admitted before that still count as failures
            assert s.state is CircuitState.OPEN
            assert s.failures >= THRESHOLD


@pytest.mark.anyio
async def test_a_thousand_tasks_to_fifty_hosts_every_request_accounted_for(
    farm: ServerFarm,
) -> None:
    urls = farm.urls()
    hits_before = list(farm.hits)
    transport = AsyncCircuitBreakerTransport(PoolPerOrigin(), policy=POLICY, clock=ManualClock())
    seen: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:

        async def worker(n: int) -> None:
            for round_ in range(REQUESTS_PER_TASK):
                url = urls[(n + round_ * 7) % HOSTS]
                try:
                    outcome: object = await client.get(url)
                except httpx.HTTPError as exc:
                    outcome = exc
                seen[url][_tally_key(outcome)] += 1

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for n in range(TASKS):
                    tg.start_soon(worker, n)
        assert sum(sum(c.values()) for c in seen.values()) == TASKS * REQUESTS_PER_TASK
        _check(transport, farm, seen, hits_before, TASKS * REQUESTS_PER_TASK // HOSTS)
        # and now every failing host fails fast, without a request reaching it
        hits = list(farm.hits)
        for index, url in enumerate(urls):
            if BEHAVIOURS[index] != "ok":
                with pytest.raises(CircuitOpenError):
                    await client.get(url)
        assert farm.hits == hits
    assert sum(s.rejections for s in transport.stats().values()) > 0


def test_the_sync_transport_from_32_threads_every_request_accounted_for(farm: ServerFarm) -> None:
    urls = farm.urls()
    hits_before = list(farm.hits)
    transport = CircuitBreakerTransport(
        httpx.HTTPTransport(limits=LIMITS), policy=POLICY, clock=ManualClock()
    )
    seen: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)
    with httpx.Client(transport=transport, timeout=TIMEOUT) as client:

        def worker(n: int) -> None:
            try:
                start.wait(30)
                for round_ in range(REQUESTS_PER_THREAD):
                    url = urls[(n * REQUESTS_PER_THREAD + round_) % HOSTS]
                    try:
                        outcome: object = client.get(url)
                    except httpx.HTTPError as exc:
                        outcome = exc
                    with lock:
                        seen[url][_tally_key(outcome)] += 1
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        assert sum(sum(c.values()) for c in seen.values()) == THREADS * REQUESTS_PER_THREAD
        _check(transport, farm, seen, hits_before, THREADS * REQUESTS_PER_THREAD // HOSTS)
        hits = list(farm.hits)
        for index, url in enumerate(urls):
            if BEHAVIOURS[index] != "ok":
                with pytest.raises(CircuitOpenError):
                    client.get(url)
        assert farm.hits == hits
