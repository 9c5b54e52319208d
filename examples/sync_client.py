"""The sync ``httpx.Client`` behind a breaker: a script that polls an upstream.

    python examples/sync_client.py http://127.0.0.1:8001/data --requests 6

Each line is what one request got: the status, the exception, or, once the host's circuit is
open, the fast failure (no request sent) and when a probe is allowed. The last line is the
circuit's counters.
"""

from __future__ import annotations

import argparse

import httpx

from breaker_transport import (
    BreakerPolicy,
    CircuitBreakerTransport,
    CircuitOpenError,
    breaker_client,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--failure-threshold", type=int, default=3)
    args = parser.parse_args(argv)

    breaker = CircuitBreakerTransport.over_http(
        policy=BreakerPolicy(failure_threshold=args.failure_threshold, recovery_timeout=30.0)
    )
    with breaker_client(breaker, timeout=5.0) as client:
        for number in range(1, args.requests + 1):
            try:
                response = client.get(args.url)
            except CircuitOpenError as error:
                print(f"{number}: circuit open, not sent; probe in {error.retry_after:.0f}s")
            except httpx.TransportError as error:
                print(f"{number}: {type(error).__name__}")
            else:
                print(f"{number}: {response.status_code}")
    for key, stats in breaker.stats().items():
        print(
            f"{key}: {stats.state.value}, {stats.successes} ok, {stats.failures} failed, "
            f"{stats.rejections} rejected"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
