"""Per-request overhead of RedisStorage vs the in-memory storage vs pybreaker's Redis storage.

Every variant sends the same requests through ``httpx.Client`` to the same inner
``httpx.MockTransport`` (a 200, no network), so the difference to the bare client is what the
breaker costs. Redis is a private ``redis-server`` on a free loopback port (or ``--redis-url``).
Bounded: ``requests`` per repeat, ``repeats`` repeats; the report gives medians.

    python -m benchmarks.redis_overhead              # needs redis-server, redis, pybreaker
    pip install -e ".[redis-bench]"                  # redis + pybreaker

``run(...)`` returns the results as a dict, for a benchmark suite to fold in.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx

from breaker_transport import (
    AsyncCircuitBreakerTransport,
    BreakerPolicy,
    CircuitBreakerTransport,
    CircuitOpenError,
)

URL = "http://bench.example/"
POLICY = BreakerPolicy(failure_threshold=5, recovery_timeout=600.0)


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200)


def _fail(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503)


@contextmanager
def local_redis() -> Iterator[str]:
    """A throw-away redis-server on 127.0.0.1 (no persistence), stopped afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="bench-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def _commands(redis_module: Any, url: str) -> int:
    """Commands Redis has executed so far (every kind), from INFO commandstats."""
    with redis_module.Redis.from_url(url) as admin:
        stats = admin.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def run(redis_url: str, *, requests: int = 500, repeats: int = 5) -> dict[str, Any]:
    """Measure every variant; returns {"variants": {name: {"us_per_request", "overhead_us",
    "round_trips_per_request"}}, "requests", "repeats"}.

    The variants take turns within each repeat (one warm-up repeat first), so a machine whose
    load changes during the run slows them all alike; each figure is the median over repeats.
    """
    import redis
    import redis.asyncio

    from breaker_transport.storage import RedisStorage

    loop = asyncio.new_event_loop()
    sync_variants: dict[str, tuple[Callable[[], object], Any]] = {}
    async_variants: dict[str, tuple[Callable[[], Any], Any]] = {}

    ping_client = redis.Redis.from_url(redis_url)
    sync_variants["(reference) one Redis PING"] = (ping_client.ping, None)
    bare = httpx.Client(transport=httpx.MockTransport(_ok))
    sync_variants["no breaker"] = (lambda: bare.get(URL), None)
    memory = httpx.Client(
        transport=CircuitBreakerTransport(httpx.MockTransport(_ok), policy=POLICY)
    )
    sync_variants["in-memory"] = (lambda: memory.get(URL), None)

    shared = CircuitBreakerTransport(
        httpx.MockTransport(_ok),
        policy=POLICY,
        storage=RedisStorage(redis.Redis.from_url(redis_url), prefix="bench"),
    )
    shared_client = httpx.Client(transport=shared)
    sync_variants["RedisStorage sync (closed)"] = (lambda: shared_client.get(URL), shared)

    known_open = CircuitBreakerTransport(
        httpx.MockTransport(_fail),
        policy=POLICY,
        storage=RedisStorage(
            redis.Redis.from_url(redis_url), prefix="bench-open", sync_interval=3600.0
        ),
    )
    open_client = httpx.Client(transport=known_open)
    for _ in range(POLICY.failure_threshold or 1):
        open_client.get(URL)

    def rejected() -> None:
        with suppress(CircuitOpenError):
            open_client.get(URL)

    sync_variants["RedisStorage sync (known open, rejected)"] = (rejected, known_open)

    bare_async = httpx.AsyncClient(transport=httpx.MockTransport(_ok))
    async_variants["no breaker (async)"] = (lambda: bare_async.get(URL), None)
    shared_async = AsyncCircuitBreakerTransport(
        httpx.MockTransport(_ok),
        policy=POLICY,
        storage=RedisStorage(redis.asyncio.Redis.from_url(redis_url), prefix="bench-async"),
    )
    async_client = httpx.AsyncClient(transport=shared_async)
    async_variants["RedisStorage async (closed)"] = (lambda: async_client.get(URL), shared_async)

    breaker: Any = None
    try:
        import pybreaker
    except ImportError:
        pybreaker = None
    else:
        pybreaker_storage = pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, redis.Redis.from_url(redis_url), namespace="bench-pybreaker"
        )
        breaker = pybreaker.CircuitBreaker(
            fail_max=5, reset_timeout=600, state_storage=pybreaker_storage
        )
        pb_client = httpx.Client(transport=httpx.MockTransport(_ok))
        sync_variants["pybreaker CircuitRedisStorage"] = (
            lambda: breaker.call(pb_client.get, URL),
            "pybreaker",
        )

    samples: dict[str, list[float]] = {n: [] for n in [*sync_variants, *async_variants]}
    trips: dict[str, int] = dict.fromkeys(samples, 0)

    async def time_async(send: Callable[[], Any]) -> float:
        started = time.perf_counter()
        for _ in range(requests):
            await send()
        return time.perf_counter() - started

    for index in range(repeats + 1):
        for name, (send, counter) in sync_variants.items():
            before = _trips(counter, redis, redis_url)
            started = time.perf_counter()
            for _ in range(requests):
                send()
            elapsed = time.perf_counter() - started
            trips[name] += _trips(counter, redis, redis_url) - before
            if index:
                samples[name].append(elapsed / requests * 1e6)
        for name, (asend, counter) in async_variants.items():
            before = _trips(counter, redis, redis_url)
            elapsed = loop.run_until_complete(time_async(asend))
            trips[name] += _trips(counter, redis, redis_url) - before
            if index:
                samples[name].append(elapsed / requests * 1e6)

    for client in (bare, memory, shared_client, open_client):
        client.close()
    loop.run_until_complete(bare_async.aclose())
    loop.run_until_complete(async_client.aclose())
    loop.close()
    ping_client.close()

    total = requests * (repeats + 1)
    variants: dict[str, Any] = {}
    for name, values in samples.items():
        variants[name] = {
            "us_per_request": statistics.median(values),
            "round_trips_per_request": 1.0
            if name.startswith("(reference)")
            else trips[name] / total,
        }
    if pybreaker is None:
        variants["pybreaker CircuitRedisStorage"] = {"skipped": "pip install pybreaker"}
    for name, entry in variants.items():
        if "us_per_request" in entry and not name.startswith("(reference)"):
            floor = "no breaker (async)" if "async" in name else "no breaker"
            entry["overhead_us"] = entry["us_per_request"] - variants[floor]["us_per_request"]
    return {"requests": requests, "repeats": repeats, "variants": variants}


def _trips(counter: Any, redis_module: Any, url: str) -> int:
    """Round trips so far: the breaker's own count, or (pybreaker) Redis's command count less
    the INFO call that reads it."""
    if counter is None:
        return 0
    if counter == "pybreaker":
        return _commands(redis_module, url) - 1
    return int(counter._storage.round_trips)


def report(results: dict[str, Any]) -> str:
    lines = [
        f"per-request cost, median of {results['repeats']} x {results['requests']} requests "
        "(inner: httpx.MockTransport 200; Redis on 127.0.0.1)",
        f"{'variant':44} {'us/request':>11} {'overhead us':>12} {'Redis calls/req':>16}",
    ]
    for name, entry in results["variants"].items():
        if "skipped" in entry:
            lines.append(f"{name:44} skipped: {entry['skipped']}")
            continue
        trips = entry["round_trips_per_request"]
        overhead = entry.get("overhead_us")
        shown = "" if overhead is None else f"{overhead:12.1f}"
        lines.append(f"{name:44} {entry['us_per_request']:11.1f} {shown:>12} {trips:16.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.redis_url:
        print(report(run(args.redis_url, requests=args.requests, repeats=args.repeats)))
        return
    with local_redis() as url:
        print(report(run(url, requests=args.requests, repeats=args.repeats)))


if __name__ == "__main__":
    main()
