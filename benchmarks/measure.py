"""Interleaved CPU-time measurement: the one method every in-process scenario uses.

The machine is shared and noisy, so no competitor is timed on its own. A *round* runs one block
of ``calls`` operations for every competitor, in an order that rotates from round to round
(A B C, then B C A, ...), so a slow patch of the machine hits them all alike. Each block is timed
in this thread's CPU time (``time.thread_time``: time spent waiting for the CPU while another
process runs does not count), and every figure reported is a median over rounds of a per-round
quantity: the time per call, the time added over ``raw`` in the same round, and the ratios to
``raw`` and ``passthrough`` in the same round. The spread is the interquartile range over rounds.

Every loop here is bounded: ``rounds`` x competitors x ``calls``, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: A sync operation (one call), or an async one (a coroutine function of no argument).
SyncOp = Callable[[], object]
AsyncOp = Callable[[], Awaitable[object]]

RAW = "raw"
PASSTHROUGH = "passthrough"


@dataclass(frozen=True)
class Budget:
    """How much measuring one variant of a scenario gets."""

    rounds: int
    #: CPU seconds one block should take; ``calls`` is calibrated from the first competitor
    block_seconds: float
    min_calls: int = 1
    max_calls: int = 200_000


QUICK = Budget(rounds=11, block_seconds=0.008)
FULL = Budget(rounds=31, block_seconds=0.025)


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(q1, median, q3) of at least one value."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


@dataclass
class Row:
    """One competitor's figures in one variant, all medians over rounds (µs per call)."""

    name: str
    per_call_us: list[float] = field(default_factory=list)
    added_us: list[float] = field(default_factory=list)
    ratio_raw: list[float] = field(default_factory=list)
    ratio_passthrough: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"competitor": self.name}
        for label, values in (
            ("us_per_call", self.per_call_us),
            ("added_us", self.added_us),
            ("x_raw", self.ratio_raw),
            ("x_passthrough", self.ratio_passthrough),
        ):
            if values:
                q1, median, q3 = quartiles(values)
                out[label] = round(median, 4)
                out[label + "_iqr"] = [round(q1, 4), round(q3, 4)]
        return out


def _calls_for(seconds: float, calls: int, budget: Budget) -> int:
    per_call = max(seconds / calls, 1e-9)
    return max(budget.min_calls, min(budget.max_calls, int(budget.block_seconds / per_call)))


def paired(result: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    """``a`` minus ``b`` round by round (µs per call): the median and IQR of the difference, and
    of the ratio. Pairing within a round cancels what a slow patch of the machine adds to both."""
    rounds = result["per_round_us"]
    differences = [r[a] - r[b] for r in rounds]
    ratios = [r[a] / r[b] for r in rounds if r[b] > 0]
    q1, median, q3 = quartiles(differences)
    r1, ratio, r3 = quartiles(ratios)
    return {
        "difference_us": round(median, 4),
        "difference_us_iqr": [round(q1, 4), round(q3, 4)],
        "ratio": round(ratio, 4),
        "ratio_iqr": [round(r1, 4), round(r3, 4)],
    }


def _per_round(per_round: list[dict[str, float]], calls: int) -> list[dict[str, float]]:
    return [{name: round(s / calls * 1e6, 4) for name, s in r.items()} for r in per_round]


def _rows(
    names: Sequence[str], per_round: list[dict[str, float]], calls: int
) -> list[dict[str, Any]]:
    rows = {name: Row(name) for name in names}
    for timings in per_round:
        raw = timings.get(RAW)
        passthrough = timings.get(PASSTHROUGH)
        for name, seconds in timings.items():
            us = seconds / calls * 1e6
            row = rows[name]
            row.per_call_us.append(us)
            if raw is not None:
                raw_us = raw / calls * 1e6
                row.added_us.append(us - raw_us)
                row.ratio_raw.append(seconds / raw if raw > 0 else float("nan"))
            if passthrough is not None:
                row.ratio_passthrough.append(
                    seconds / passthrough if passthrough > 0 else float("nan")
                )
    return [rows[name].summary() for name in names]


def _order(names: Sequence[str], round_index: int) -> list[str]:
    shift = round_index % len(names)
    return [*names[shift:], *names[:shift]]


def measure_sync(
    ops: Mapping[str, SyncOp], budget: Budget, *, calls: int | None = None
) -> dict[str, Any]:
    """Interleaved rounds over sync operations; returns ``{"calls", "rounds", "rows"}``."""
    names = list(ops)

    def block(name: str, n: int) -> float:
        op = ops[name]
        gc.collect(0)
        start = time.thread_time()
        for _ in range(n):
            op()
        return time.thread_time() - start

    with _frozen_heap():
        if calls is None:  # calibrate on the first competitor: double until a quarter block
            calls = 1
            while (seconds := block(names[0], calls)) < budget.block_seconds / 4:
                calls *= 2
            calls = _calls_for(seconds, calls, budget)
        for name in names:  # warm-up: caches, lazily built state, specialised bytecode
            block(name, min(calls, 200))
        per_round = [
            {name: block(name, calls) for name in _order(names, index)}
            for index in range(budget.rounds)
        ]
    return {
        "calls": calls,
        "rounds": budget.rounds,
        "rows": _rows(names, per_round, calls),
        "per_round_us": _per_round(per_round, calls),
    }


def measure_async(
    ops: Mapping[str, AsyncOp], budget: Budget, *, calls: int | None = None
) -> dict[str, Any]:
    """The same over coroutine functions, all in one event loop."""

    async def main() -> dict[str, Any]:
        names = list(ops)

        async def block(name: str, n: int) -> float:
            op = ops[name]
            gc.collect(0)
            start = time.thread_time()
            for _ in range(n):
                await op()
            return time.thread_time() - start

        n = calls
        if n is None:
            n = 1
            while (seconds := await block(names[0], n)) < budget.block_seconds / 4:
                n *= 2
            n = _calls_for(seconds, n, budget)
        for name in names:
            await block(name, min(n, 200))
        per_round = []
        for index in range(budget.rounds):
            timings = {}
            for name in _order(names, index):
                timings[name] = await block(name, n)
            per_round.append(timings)
        return {
            "calls": n,
            "rounds": budget.rounds,
            "rows": _rows(names, per_round, n),
            "per_round_us": _per_round(per_round, n),
        }

    with _frozen_heap():
        result: dict[str, Any] = run_async(main())
    return result


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Move everything built so far out of the collector's sight (``gc.freeze``), so that a
    collection inside a block scans only what the competitor allocates, not the whole set-up
    (100,000 prebuilt requests, say). Collections still run, as in real use."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_async(coroutine: Awaitable[Any]) -> Any:
    """Run a coroutine in a fresh asyncio loop (every scenario gets its own)."""

    async def wrapper() -> Any:
        return await coroutine

    return asyncio.run(wrapper())
