"""Scenario 2: the open path, what a request costs once its host is known to be down.

Each breaker wraps the same inner transport, which raises ``httpx.ConnectError`` on every call;
it is driven until it opens (and checked to reject with its own open error), then every call is
a rejection. ``raw`` and ``passthrough`` are the failing call itself (in-process, so the cheapest
failure there is; over a network a refused connection costs far more, see scenario 4). The
figure is the whole cost per rejected request, ``try``/``except`` in the caller included.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

from . import inner as inners
from .competitors import by_name
from .measure import Budget, measure_async

URL = "http://down.example.com/items"
RECOVERY = 3600.0  # stays open for the whole measurement
DRIVE = 20  # failures sent to open every breaker (interlock-cb needs 10 calls at 50% failures)


async def _open(transport: Any, request: httpx.Request, open_error: tuple[str, ...]) -> None:
    for _ in range(DRIVE):
        with contextlib.suppress(Exception):
            await transport.handle_async_request(request)
    try:
        await transport.handle_async_request(request)
    except Exception as error:
        if open_error and type(error).__name__ not in open_error:
            raise AssertionError(f"{transport!r} did not open: {error!r}") from error
    else:
        raise AssertionError(f"{transport!r} did not reject")


def run(budget: Budget, quick: bool) -> dict[str, Any]:
    from .measure import run_async

    request = httpx.Request("GET", URL)
    inner = inners.failing()
    transports = {}
    for competitor in by_name():
        assert competitor.build_async is not None
        transport = competitor.build_async(inner, RECOVERY)
        run_async(_open(transport, request, competitor.open_error))
        transports[competitor.name] = transport

    ops = {}
    for name, transport in transports.items():
        handle = transport.handle_async_request

        async def op(handle: Any = handle) -> None:
            # not contextlib.suppress: it would add its own cost to every measured call
            try:  # noqa: SIM105
                await handle(request)
            except Exception:
                pass

        ops[name] = op
    result = measure_async(ops, budget)
    return {
        "scenario": "open_path",
        "title": "2. Open path: the cost of each rejected request once a host is down",
        "unit": "µs per request (CPU time)",
        "about": __doc__,
        "variants": [
            {
                "name": "transport level, inner raises ConnectError (raw: the failing call)",
                "key": "rejected",
                **result,
            }
        ],
    }
