"""The benchmark suite: ``python -m benchmarks [--quick] [--only NAME ...] [--out DIR]``.

Runs every scenario (or those named), prints each table, and writes a JSON and a markdown file
per scenario, ``summary.md`` (the targets first) and ``chart.png`` to ``--out`` (default
``benchmarks/results``). ``--quick`` (fewer rounds, smaller blocks, at most 10k hosts) finishes
in well under 3 minutes on a 2-core machine (about 1.5 here); the full run takes about 12.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any

from . import report
from .measure import FULL, QUICK, Budget

#: scenario name -> module (each has ``run(budget, quick) -> dict``)
SCENARIOS = {
    "closed_path": "closed_path",
    "open_path": "open_path",
    "many_hosts": "many_hosts",
    "loopback": "loopback",
    "sync_client": "sync_client",
    "windows": "windows",
    "redis_storage": "redis_storage",
}

DEFAULT_OUT = Path(__file__).parent / "results"


def run_scenarios(
    names: list[str], budget: Budget, quick: bool, *, echo: bool = True
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        module = importlib.import_module(f"{__package__}.{SCENARIOS[name]}")
        start = time.monotonic()
        result: dict[str, Any] = module.run(budget, quick)
        result["seconds"] = round(time.monotonic() - start, 1)
        results[name] = result
        if echo:
            print(report.scenario_markdown(result))
            print(f"({name}: {result['seconds']} s)\n", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds: under 3 minutes")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=sorted(SCENARIOS),
        metavar="NAME",
        help="run only these scenarios",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the results")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    args = parser.parse_args(argv)

    from .competitors import missing_peers

    missing = missing_peers()
    if missing:
        print(
            f"missing the bench extra's packages: {', '.join(missing)}; "
            'install them with: pip install -e ".[bench]"',
            file=sys.stderr,
        )
        return 2
    try:
        import sniffio  # noqa: F401
    except ImportError:
        print(
            "warning: sniffio is not installed; httpcore then retries `import sniffio` on every "
            "connection lock it sets up, which costs real requests dearly (the bench extra "
            "installs it)",
            file=sys.stderr,
        )

    budget = QUICK if args.quick else FULL
    if args.rounds:
        budget = Budget(args.rounds, budget.block_seconds)
    names = args.only or list(SCENARIOS)
    start = time.monotonic()
    results = run_scenarios(names, budget, args.quick)
    env = report.environment(args.quick)
    summary = report.write(results, env, args.out)
    chart = report.chart(results, args.out / "chart.png")
    print("## Targets\n")
    print(report.targets_markdown(report.targets(results)))
    print(f"\nwrote {summary}" + (f" and {chart}" if chart else ""))
    print(f"total: {time.monotonic() - start:.0f} s")
    return 0
