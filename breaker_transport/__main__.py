"""``python -m breaker_transport demo`` (also the ``breaker-transport`` console script).

A thin command line over ``breaker_transport.demo``; the demo needs the ``demo`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

_NEEDS_EXTRA = (
    "the demo needs the 'demo' extra (rich, uvicorn, matplotlib): "
    "pip install 'breaker-transport[demo]'  (from a checkout: pip install '.[demo]')"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="breaker-transport", description="Per-host circuit breakers for httpx."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="watch circuits open and recover against real flaky upstreams on 127.0.0.1",
        description=(
            "Starts five upstreams on 127.0.0.1 (healthy; failing, then recovering; turning "
            "slow; refusing connections; 503 with Retry-After, then back), drives traffic "
            "through one AsyncCircuitBreakerTransport, shows a live per-host table and ends "
            "with a summary. No network needed."
        ),
    )
    demo.add_argument(
        "--duration", type=float, default=20.0, help="seconds of traffic (default 20)"
    )
    demo.add_argument("--concurrency", type=int, default=8, help="concurrent workers (default 8)")
    demo.add_argument(
        "--policy",
        default="consecutive",
        metavar="PRESET[,FIELD=VALUE...]",
        help=(
            "a preset ('consecutive', the default, or 'rate') and/or BreakerPolicy overrides, "
            "e.g. 'rate,failure_rate_threshold=0.3' or 'failure_threshold=5'"
        ),
    )
    demo.add_argument("--plot", metavar="FILE.png", help="write a timeline of each host's state")
    demo.add_argument(
        "--status",
        action="store_true",
        help="also serve the status page (breaker_transport.status_app) on a free local port",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        from .demo import DemoOptions, parse_policy, run_demo
        from .demo.live import make_console, summary_renderable
        from .demo.policies import describe
    except ImportError as exc:
        print(f"breaker-transport: {_NEEDS_EXTRA} ({exc})", file=sys.stderr)
        return 2
    try:
        options = DemoOptions(
            duration=args.duration,
            concurrency=args.concurrency,
            policy=args.policy,
            status=args.status,
        )
        policy = parse_policy(options.policy, options.duration)
    except ValueError as exc:
        parser.error(str(exc))
    if args.plot:
        try:
            import matplotlib  # noqa: F401  (fail now, not after the run)
        except ImportError as exc:
            print(f"breaker-transport: --plot: {_NEEDS_EXTRA} ({exc})", file=sys.stderr)
            return 2
    console = make_console()
    console.print(f"policy: {describe(policy)}", style="dim")
    try:
        summary = asyncio.run(run_demo(options, console))
    except KeyboardInterrupt:
        return 130
    console.print(summary_renderable(summary))
    if args.plot:
        from .demo.plot import write_plot

        console.print(f"timeline written to {write_plot(summary, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
