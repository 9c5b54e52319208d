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


def _time_sync(send: Callable[[], object], requests: int, repeats: int) -> list[float]:
    """Microseconds per request, one number per repeat (after one warm-up repeat)."""
    samples = []
    for index in range(repeats + 1):
        started = time.perf_counter()
        for _ in range(requests):
            send()
        elapsed = time.perf_counter() - started
        if index:
            samples.append(elapsed / requests * 1e6)
    return samples


def _evalsha_calls(redis_module: Any, url: str) -> int:
    with redis_module.Redis.from_url(url) as admin:
        stats = admin.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def run(redis_url: str, *, requests: int = 500, repeats: int = 5) -> dict[str, Any]:
    """Measure every variant; returns {variant: {"us_per_request", "overhead_us",
    "round_trips_per_request"}} plus the parameters."""
    import redis

    from breaker_transport.storage import RedisStorage

    results: dict[str, Any] = {"requests": requests, "repeats": repeats, "variants": {}}
    variants = results["variants"]

    def record(name: str, samples: list[float], round_trips: float | None) -> None:
        variants[name] = {
            "us_per_request": statistics.median(samples),
            "round_trips_per_request": round_trips,
        }

    # The floor of one round trip to this Redis (a PING), for scale.
    with redis.Redis.from_url(redis_url) as ping_client:
        ping_client.ping()
        record("(reference) one Redis PING", _time_sync(ping_client.ping, requests, repeats), 1.0)

    # Bare client: the floor every variant pays.
    with httpx.Client(transport=httpx.MockTransport(_ok)) as client:
        record("no breaker", _time_sync(lambda: client.get(URL), requests, repeats), 0.0)

    with httpx.Client(
        transport=CircuitBreakerTransport(httpx.MockTransport(_ok), policy=POLICY)
    ) as client:
        record("in-memory", _time_sync(lambda: client.get(URL), requests, repeats), 0.0)

    # RedisStorage, sync, closed path (admit + settle).
    transport = CircuitBreakerTransport(
        httpx.MockTransport(_ok),
        policy=POLICY,
        storage=RedisStorage(redis.Redis.from_url(redis_url), prefix="bench"),
    )
    with httpx.Client(transport=transport) as client:
        client.get(URL)
        before = transport._storage.round_trips
        samples = _time_sync(lambda: client.get(URL), requests, repeats)
        trips = (transport._storage.round_trips - before) / (requests * (repeats + 1))
        record("RedisStorage sync (closed)", samples, trips)

    # RedisStorage, sync, a circuit known to be open: rejected from the local mirror.
    transport = CircuitBreakerTransport(
        httpx.MockTransport(_fail),
        policy=POLICY,
        storage=RedisStorage(
            redis.Redis.from_url(redis_url), prefix="bench-open", sync_interval=3600.0
        ),
    )
    with httpx.Client(transport=transport) as client:
        for _ in range(POLICY.failure_threshold or 1):
            client.get(URL)

        def rejected() -> None:
            with suppress(CircuitOpenError):
                client.get(URL)

        before = transport._storage.round_trips
        samples = _time_sync(rejected, requests, repeats)
        trips = (transport._storage.round_trips - before) / (requests * (repeats + 1))
        record("RedisStorage sync (known open, rejected)", samples, trips)

    # RedisStorage, async (redis.asyncio), closed path.
    async def async_variant() -> tuple[list[float], float]:
        import redis.asyncio

        transport = AsyncCircuitBreakerTransport(
            httpx.MockTransport(_ok),
            policy=POLICY,
            storage=RedisStorage(redis.asyncio.Redis.from_url(redis_url), prefix="bench-async"),
        )
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get(URL)
            before = transport._storage.round_trips
            samples = []
            for index in range(repeats + 1):
                started = time.perf_counter()
                for _ in range(requests):
                    await client.get(URL)
                if index:
                    samples.append((time.perf_counter() - started) / requests * 1e6)
            trips = (transport._storage.round_trips - before) / (requests * (repeats + 1))
        return samples, trips

    async def async_floor() -> list[float]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(_ok)) as client:
            samples = []
            for index in range(repeats + 1):
                started = time.perf_counter()
                for _ in range(requests):
                    await client.get(URL)
                if index:
                    samples.append((time.perf_counter() - started) / requests * 1e6)
        return samples

    record("no breaker (async)", asyncio.run(async_floor()), 0.0)
    samples, trips = asyncio.run(async_variant())
    record("RedisStorage async (closed)", samples, trips)

    # pybreaker with CircuitRedisStorage, wrapping the same client call.
    try:
        import pybreaker
    except ImportError:
        variants["pybreaker CircuitRedisStorage"] = {"skipped": "pip install pybreaker"}
    else:
        storage = pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, redis.Redis.from_url(redis_url), namespace="bench-pybreaker"
        )
        breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=600, state_storage=storage)
        with httpx.Client(transport=httpx.MockTransport(_ok)) as client:
            calls_before = _evalsha_calls(redis, redis_url)
            samples = _time_sync(lambda: breaker.call(client.get, URL), requests, repeats)
            calls = _evalsha_calls(redis, redis_url) - calls_before - 1  # the INFO itself
            record(
                "pybreaker CircuitRedisStorage",
                samples,
                calls / (requests * (repeats + 1)),
            )

    for name, entry in variants.items():
        if "us_per_request" in entry and not name.startswith("(reference)"):
            floor = "no breaker (async)" if "async" in name else "no breaker"
            entry["overhead_us"] = entry["us_per_request"] - variants[floor]["us_per_request"]
    return results


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
