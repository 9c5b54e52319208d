"""Scenario 4: a real server on 127.0.0.1 (uvicorn, in a separate process).

Throughput: ``raw`` (``httpx.AsyncHTTPTransport``), ``passthrough`` and ``ours`` over that same
inner transport, each sending a bounded load of GETs through ``httpx.AsyncClient`` from
``CONCURRENCY`` tasks, taking turns round after round. Wall time gives the throughput (the
server's work included, so this is what a user sees); the client's CPU time per request is given
too, being far less noisy.

Failing upstream: the same bounded load to an upstream that answers 503 at once, 503 after 5 ms,
or refuses connections (a closed port). ``raw`` sends every request; ``ours`` (a fresh breaker
each round, 5 failures to open, a long recovery) stops sending once the circuit opens. With free
rejections the wall time would drop to the share of requests still sent (1 - rejected share);
each rejection costs a little (the client builds the request, the breaker raises
``CircuitOpenError``, measured here on the open circuit), so the expected ratio is
``still sent + rejected share x rejection cost / failing request's share of the raw wall time``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from .competitors import Passthrough, ours_async
from .measure import Budget, quartiles, run_async

CONCURRENCY = 8
RECOVERY = 600.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def upstream(lifetime: float) -> Iterator[str]:
    """Start the upstream process, wait until it accepts connections, stop it afterwards."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.upstream",
            "--port",
            str(port),
            "--lifetime",
            str(lifetime),
        ],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20.0
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    error = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"the loopback upstream did not start: {error}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


async def _load(client: httpx.AsyncClient, url: str, requests: int) -> tuple[float, float]:
    """Send ``requests`` GETs from CONCURRENCY tasks; (wall seconds, client CPU seconds)."""
    per_task = requests // CONCURRENCY

    async def worker() -> None:
        for _ in range(per_task):
            try:
                response = await client.get(url)
                response.raise_for_status()
            except httpx.HTTPError:
                pass

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - wall, time.process_time() - cpu


def _summary(values: list[float]) -> dict[str, Any]:
    q1, median, q3 = quartiles(values)
    return {"median": round(median, 4), "iqr": [round(q1, 4), round(q3, 4)]}


async def _throughput(base: str, rounds: int, requests: int) -> dict[str, Any]:
    inner = httpx.AsyncHTTPTransport()
    clients = {
        "raw": httpx.AsyncClient(transport=inner),
        "passthrough": httpx.AsyncClient(transport=Passthrough(inner)),
        "ours": httpx.AsyncClient(transport=ours_async(inner, RECOVERY)),
    }
    names = list(clients)
    url = f"{base}/ok"
    for client in clients.values():  # warm-up: connections, caches
        await _load(client, url, CONCURRENCY * 10)
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in [*names[shift:], *names[:shift]]:
            wall, cpu = await _load(clients[name], url, requests)
            walls[name].append(wall)
            cpus[name].append(cpu)
    await inner.aclose()
    rows = []
    for name in names:
        per_round_rps = [requests / w for w in walls[name]]
        row = {
            "competitor": name,
            "requests_per_s": _summary(per_round_rps),
            "x_raw_throughput": _summary([walls["raw"][i] / walls[name][i] for i in range(rounds)]),
            "client_cpu_us_per_request": _summary([c / requests * 1e6 for c in cpus[name]]),
            "x_raw_client_cpu": _summary([cpus[name][i] / cpus["raw"][i] for i in range(rounds)]),
        }
        rows.append(row)
    return {"requests_per_round": requests, "rounds": rounds, "rows": rows}


async def _failing(url: str, rounds: int, requests: int) -> dict[str, Any]:
    inner = httpx.AsyncHTTPTransport()
    raw = httpx.AsyncClient(transport=inner)
    raw_walls: list[float] = []
    ours_walls: list[float] = []
    shares: list[float] = []
    reject_walls: list[float] = []
    for index in range(rounds):
        breaker = ours_async(inner, RECOVERY)
        ours = httpx.AsyncClient(transport=breaker)
        order = [("raw", raw), ("ours", ours)]
        if index % 2:
            order.reverse()
        for name, client in order:
            wall, _cpu = await _load(client, url, requests)
            (raw_walls if name == "raw" else ours_walls).append(wall)
        stats = next(iter(breaker.stats().values()))
        shares.append(stats.rejections / requests)
        # What a rejection costs through the client, the same load on the now open circuit.
        reject_walls.append((await _load(ours, url, requests))[0] / requests)
    await inner.aclose()
    ratios = [o / r for o, r in zip(ours_walls, raw_walls, strict=True)]
    share = statistics.median(shares)
    raw_wall = statistics.median(raw_walls)
    reject = statistics.median(reject_walls)
    # Free rejections would leave the share still sent; real ones cost `reject` each.
    limit = (1 - share) + share * reject * requests / raw_wall
    saved = 1 - statistics.median(ratios)
    return {
        "requests_per_round": requests,
        "rounds": rounds,
        "raw_wall_ms": _summary([w * 1e3 for w in raw_walls]),
        "ours_wall_ms": _summary([w * 1e3 for w in ours_walls]),
        "rejected_share": round(share, 4),
        "wall_ratio": _summary(ratios),
        "still_sent": round(1 - share, 4),
        "rejection_us": round(reject * 1e6, 1),
        "expected_wall_ratio": round(limit, 4),
        "time_saved": round(saved, 4),
    }


def run(budget: Budget, quick: bool) -> dict[str, Any]:
    rounds = 11 if quick else 31
    requests = 200 if quick else 600
    with upstream(lifetime=240.0 if quick else 900.0) as base:
        throughput = run_async(_throughput(base, rounds, requests))
        failing = {}
        for label, url in (
            ("503 at once", f"{base}/fail"),
            ("503 after 5 ms", f"{base}/slowfail"),
            ("connection refused", f"http://127.0.0.1:{_free_port()}/"),
        ):
            failing[label] = run_async(_failing(url, rounds, requests))
    return {
        "scenario": "loopback",
        "title": "4. Real server on 127.0.0.1 (uvicorn, separate process)",
        "about": __doc__,
        "concurrency": CONCURRENCY,
        "throughput": throughput,
        "failing": failing,
    }
