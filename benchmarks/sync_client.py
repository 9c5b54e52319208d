"""Scenario 5: the sync client, ``httpx.Client.get`` over every competitor's sync transport.

The same competitors and inner transports as scenario 1 (``aiobreaker`` and ``purgatory`` through
their sync APIs); ``interlock-cb`` with its own sync transport.
"""

from __future__ import annotations

from typing import Any

import httpx

from . import inner as inners
from .competitors import PASSTHROUGH_BODY, Competitor, by_name
from .measure import Budget, measure_sync

URL = "http://api.example.com/items?page=1"
RECOVERY = 30.0


def _competitors(streamed: bool) -> list[Competitor]:
    chosen = by_name()
    if streamed:
        chosen.insert(2, PASSTHROUGH_BODY)
    return [c for c in chosen if c.build_sync is not None]


def transport_level(budget: Budget, make_inner: Any, streamed: bool) -> dict[str, Any]:
    request = httpx.Request("GET", URL)
    inner = make_inner()
    ops = {}
    for competitor in _competitors(streamed):
        assert competitor.build_sync is not None
        handle = competitor.build_sync(inner, RECOVERY).handle_request
        if streamed:

            def op(handle: Any = handle) -> None:
                handle(request).read()

        else:

            def op(handle: Any = handle) -> None:
                handle(request)

        ops[competitor.name] = op
    return measure_sync(ops, budget)


def client_level(budget: Budget, make_inner: Any, streamed: bool) -> dict[str, Any]:
    inner = make_inner()
    ops = {}
    for competitor in _competitors(streamed):
        assert competitor.build_sync is not None
        client = httpx.Client(transport=competitor.build_sync(inner, RECOVERY))
        ops[competitor.name] = lambda client=client: client.get(URL)
    return measure_sync(ops, budget)


def run(budget: Budget, quick: bool) -> dict[str, Any]:
    variants = []
    for label, make_inner, streamed in (
        ("pre-read inner (MockTransport)", inners.pre_read, False),
        ("streaming inner", inners.streaming, True),
    ):
        variants.append(
            {
                "name": f"transport level (handle_request), {label}",
                "key": f"transport_{'stream' if streamed else 'preread'}",
                **transport_level(budget, make_inner, streamed),
            }
        )
        variants.append(
            {
                "name": f"httpx.Client, {label}",
                "key": f"client_{'stream' if streamed else 'preread'}",
                **client_level(
                    Budget(budget.rounds, budget.block_seconds * 2), make_inner, streamed
                ),
            }
        )
    return {
        "scenario": "sync_client",
        "title": "5. Sync client",
        "unit": "µs per request (CPU time)",
        "about": __doc__,
        "variants": variants,
    }
