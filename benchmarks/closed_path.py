"""Scenario 1: the closed path, where a breaker must cost (almost) nothing.

Transport level (``handle_async_request`` called directly, the breaker's own cost laid bare) and
client level (``httpx.AsyncClient.get``, sequential and 100 concurrent tasks), each over two inner
transports: ``MockTransport`` (pre-read responses, settled at once) and a streaming inner whose
body is read and closed by the caller (so a settling body wrapper is part of the cost; the
``passthrough+body`` row is a plain forwarding body wrapper, what wrapping a body costs at all).
``ours+hooks`` is the same breaker with a listener overriding ``on_call``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from . import inner as inners
from .competitors import PASSTHROUGH_BODY, Competitor, by_name
from .measure import Budget, measure_async

URL = "http://api.example.com/items?page=1"
RECOVERY = 30.0
CONCURRENCY = 100


def _variants(quick: bool) -> list[tuple[str, Any, bool]]:
    """(label, inner factory, streamed?)"""
    return [
        ("pre-read inner (MockTransport)", inners.pre_read, False),
        ("streaming inner (body read and closed by the caller)", inners.streaming, True),
    ]


def _competitors(streamed: bool, names: list[str] | None) -> list[Competitor]:
    chosen = by_name(names)
    if streamed and (names is None or PASSTHROUGH_BODY.name in names):
        chosen.insert(2, PASSTHROUGH_BODY)
    return [c for c in chosen if c.build_async is not None]


def transport_level(
    budget: Budget, make_inner: Any, streamed: bool, names: list[str] | None = None
) -> dict[str, Any]:
    request = httpx.Request("GET", URL)
    inner = make_inner()
    ops = {}
    for competitor in _competitors(streamed, names):
        assert competitor.build_async is not None
        handle = competitor.build_async(inner, RECOVERY).handle_async_request
        if streamed:

            async def op(handle: Any = handle) -> None:
                response = await handle(request)
                await response.aread()  # reads the body through every wrapper, then closes it

        else:

            async def op(handle: Any = handle) -> None:
                await handle(request)

        ops[competitor.name] = op
    return measure_async(ops, budget)


def client_level(
    budget: Budget,
    make_inner: Any,
    streamed: bool,
    concurrent: bool,
    names: list[str] | None = None,
) -> dict[str, Any]:
    inner = make_inner()
    ops = {}
    clients = []
    for competitor in _competitors(streamed, names):
        assert competitor.build_async is not None
        client = httpx.AsyncClient(transport=competitor.build_async(inner, RECOVERY))
        clients.append(client)
        if concurrent:

            async def op(client: httpx.AsyncClient = client) -> None:
                await asyncio.gather(*(client.get(URL) for _ in range(CONCURRENCY)))

        else:

            async def op(client: httpx.AsyncClient = client) -> None:
                await client.get(URL)

        ops[competitor.name] = op
    result = measure_async(ops, budget)
    if concurrent:  # one op is CONCURRENCY requests: report per request
        result["calls"] *= CONCURRENCY
        for row in result["rows"]:
            for field in ("us_per_call", "added_us"):
                if field in row:
                    row[field] = round(row[field] / CONCURRENCY, 4)
                    row[field + "_iqr"] = [round(v / CONCURRENCY, 4) for v in row[field + "_iqr"]]
    return result


def run(budget: Budget, quick: bool) -> dict[str, Any]:
    variants = []
    for label, make_inner, streamed in _variants(quick):
        variants.append(
            {
                "name": f"transport level, {label}",
                "key": f"transport_{'stream' if streamed else 'preread'}",
                **transport_level(budget, make_inner, streamed),
            }
        )
    client_budget = Budget(budget.rounds, budget.block_seconds * 4)
    for label, make_inner, streamed in _variants(quick):
        for concurrent in (False, True):
            how = f"{CONCURRENCY} concurrent tasks" if concurrent else "sequential"
            variants.append(
                {
                    "name": f"httpx.AsyncClient, {how}, {label}",
                    "key": (
                        f"client_{'concurrent' if concurrent else 'sequential'}_"
                        f"{'stream' if streamed else 'preread'}"
                    ),
                    **client_level(client_budget, make_inner, streamed, concurrent),
                }
            )
    return {
        "scenario": "closed_path",
        "title": "1. Closed path: what every successful request pays",
        "unit": "µs per request (CPU time)",
        "about": __doc__,
        "variants": variants,
    }
