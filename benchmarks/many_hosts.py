"""Scenario 3: many distinct hosts: the cost per call and the memory each host keeps.

Memory: a fresh breaker sends one request to each of N hosts; each request is built inside the
traced region and dropped after its call, so what stays allocated (tracemalloc, after a full
collection) is what the breaker keeps per host: its circuit, its key, its map entry, and any
cache. ``ours`` gets ``max_circuits`` above N for this (an idle closed circuit is what is
measured); the ``ours (max_circuits=1000)`` row shows the bound at work.

Cost per call: the same N hosts round-robin, after a first pass that created every circuit.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import httpx

from . import inner as inners
from .competitors import by_name, ours_async
from .measure import Budget, measure_async, run_async

RECOVERY = 30.0
BOUND = 1000


def _url(index: int) -> str:
    return f"http://host{index}.example.com/items"


def _builders(hosts: int) -> dict[str, Any]:
    builders: dict[str, Any] = {}
    for competitor in by_name():
        if competitor.name == "ours+hooks":
            continue
        if competitor.name == "ours":
            builders["ours"] = lambda inner: ours_async(inner, RECOVERY, max_circuits=2 * hosts)
            builders[f"ours (max_circuits={BOUND})"] = lambda inner: ours_async(
                inner, RECOVERY, max_circuits=BOUND
            )
        else:
            assert competitor.build_async is not None
            builders[competitor.name] = lambda inner, c=competitor: c.build_async(inner, RECOVERY)
    return builders


async def _memory_per_host(build: Any, hosts: int) -> float:
    inner = inners.pre_read()
    transport = build(inner)
    # Warm up every lazily built part of the machinery on a host of its own, outside the trace.
    response = await transport.handle_async_request(httpx.Request("GET", "http://warm.example/"))
    del response
    urls = [_url(index) for index in range(hosts)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for url in urls:
            await transport.handle_async_request(httpx.Request("GET", url))
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del transport
    return (after - before) / hosts


def memory(counts: list[int]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for hosts in counts:
        for name, build in _builders(hosts).items():
            per_host = run_async(_memory_per_host(build, hosts))
            rows.setdefault(name, {"competitor": name})[f"bytes_per_host_{hosts}"] = round(
                per_host, 1
            )
            gc.collect()
    return list(rows.values())


def cost(budget: Budget, hosts: int) -> dict[str, Any]:
    inner = inners.pre_read()
    requests = [httpx.Request("GET", _url(index)) for index in range(hosts)]
    ops = {}

    async def first_pass(transport: Any) -> None:
        for request in requests:
            await transport.handle_async_request(request)

    for name, build in _builders(hosts).items():
        transport = build(inner)
        if name != "raw":
            run_async(first_pass(transport))
        handle = transport.handle_async_request
        position = [0]

        async def op(handle: Any = handle, position: list[int] = position) -> None:
            index = position[0]
            position[0] = index + 1 if index + 1 < hosts else 0
            await handle(requests[index])

        ops[name] = op
    return measure_async(ops, budget)


def run(budget: Budget, quick: bool) -> dict[str, Any]:
    counts = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    variants = []
    for hosts in counts:
        variants.append(
            {"name": f"{hosts:,} hosts round-robin", "key": f"hosts_{hosts}", **cost(budget, hosts)}
        )
    return {
        "scenario": "many_hosts",
        "title": "3. Many hosts: cost per call, and memory per host",
        "unit": "µs per request (CPU time)",
        "about": __doc__,
        "variants": variants,
        "memory": {"hosts": counts, "rows": memory(counts)},
    }
