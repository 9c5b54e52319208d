"""Scenario 6: the cost of the rate rules' windows, which must not grow with their size.

The same breaker (``ours``, transport level, pre-read inner where every 10th call is a 503, so
every window is 10% failures and never trips) with: the consecutive rule only (no window), a
count window of 10 and of 10,000 calls, and a time window of 1 s and of 1 h (real clock, so the
1 s window rolls its buckets over many times during a round). O(1) per call means the 10,000 row
costs what the 10 row costs, and 1 h what 1 s costs: the differences, taken round by round (so
the machine's noise cancels), are reported with their spread. Twice the rounds of the others.
"""

from __future__ import annotations

from typing import Any

import httpx

from breaker_transport import AsyncCircuitBreakerTransport, BreakerPolicy

from . import inner as inners
from .measure import Budget, measure_async, paired

URL = "http://api.example.com/items"


def _rate(**window: Any) -> BreakerPolicy:
    return BreakerPolicy(
        failure_threshold=None, failure_rate_threshold=0.5, minimum_calls=10, **window
    )


POLICIES = {
    "consecutive rule only": BreakerPolicy(failure_threshold=5),
    "count window 10": _rate(window_size=10),
    "count window 10,000": _rate(window_size=10_000),
    "time window 1 s": _rate(window_duration=1.0),
    "time window 1 h": _rate(window_duration=3600.0),
}


def run(budget: Budget, quick: bool) -> dict[str, Any]:
    request = httpx.Request("GET", URL)
    inner = inners.every_nth_fails(10)
    ops: dict[str, Any] = {}

    async def raw_op() -> None:
        await inner.handle_async_request(request)

    ops["raw"] = raw_op
    transports = {}
    for name, policy in POLICIES.items():
        transport = AsyncCircuitBreakerTransport(inner, policy=policy)
        transports[name] = transport
        handle = transport.handle_async_request

        async def op(handle: Any = handle) -> None:
            await handle(request)

        ops[name] = op
    result = measure_async(ops, Budget(budget.rounds * 2, budget.block_seconds))
    flatness = {
        "count window 10,000 - count window 10": paired(
            result, "count window 10,000", "count window 10"
        ),
        "time window 1 h - time window 1 s": paired(result, "time window 1 h", "time window 1 s"),
    }
    opened = [
        name
        for name, transport in transports.items()
        if any(stats.state != "closed" for stats in transport.stats().values())
    ]
    return {
        "scenario": "windows",
        "title": "6. Window cost: O(1) per call whatever the window size",
        "unit": "µs per request (CPU time)",
        "about": __doc__,
        "variants": [{"name": "transport level, 10% failures", "key": "windows", **result}],
        "flatness": flatness,
        "tripped": opened,
    }
