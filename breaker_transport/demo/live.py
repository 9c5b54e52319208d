"""What the demo shows: the live per-host table, transition lines and the closing summary.

Rendering only (rich); the numbers come from ``transport.stats()`` and the ``DemoSummary``. Rich
drops colour and cursor movement by itself when the output is not a terminal; ``make_console``
makes sure of it even when FORCE_COLOR or TTY_COMPATIBLE are set, so piped output is plain text.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .._events import BreakerListener
from .._types import CircuitState, CircuitStats, StateChange
from .summary import DemoSummary
from .upstreams import Upstream

STATE_STYLE = {
    CircuitState.CLOSED: "bold green",
    CircuitState.HALF_OPEN: "bold yellow",
    CircuitState.OPEN: "bold red",
}


def make_console(file: TextIO | None = None) -> Console:
    stream = file if file is not None else sys.stdout
    tty = stream.isatty()
    # Never force a terminal onto a pipe (rich would honour FORCE_COLOR and write escapes).
    # Off a terminal, lines may be long (a log file or a pager wraps them); COLUMNS still rules.
    width = None if tty or os.environ.get("COLUMNS") else 100
    return Console(file=stream, force_terminal=tty, no_color=not tty, highlight=False, width=width)


def wants_live(console: Console) -> bool:
    """Redraw in place only on a real, capable terminal; elsewhere print lines."""
    return console.is_terminal and not console.is_dumb_terminal


def _state(state: CircuitState) -> Text:
    return Text(state.value.replace("_", "-"), style=STATE_STYLE[state])


def _next_probe(stats: CircuitStats | None) -> str:
    if stats is None or stats.retry_after is None:
        return ""
    if math.isinf(stats.retry_after):
        return "forced open"
    if stats.state is CircuitState.HALF_OPEN:
        return "probing"
    return f"in {stats.retry_after:.1f}s"


def _rates(stats: CircuitStats | None) -> str:
    """The window's failure and slow-call rates ("-" until it holds ``minimum_calls``)."""
    if stats is None or stats.failure_rate is None:
        return "-"
    slow = "" if stats.slow_call_rate is None else f"/{stats.slow_call_rate:.0%}"
    return f"{stats.failure_rate:.0%}{slow}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def live_table(
    upstreams: Sequence[Upstream],
    keys: Mapping[str, str],
    stats: Mapping[str, CircuitStats],
    elapsed: float,
    duration: float,
) -> Table:
    table = Table(
        title=f"breaker_transport demo  {min(elapsed, duration):4.1f}s / {duration:g}s",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("upstream", no_wrap=True, min_width=11)
    table.add_column("doing now", no_wrap=True)
    table.add_column("circuit", no_wrap=True, min_width=9)
    table.add_column("consec. fails", justify="right")
    table.add_column("fail/slow rate", justify="right")
    table.add_column("sent", justify="right")
    table.add_column("saved", justify="right")
    table.add_column("next probe", no_wrap=True)
    for upstream in upstreams:
        s = stats.get(keys[upstream.name])
        state = s.state if s is not None else CircuitState.CLOSED
        table.add_row(
            upstream.name,
            upstream.condition(),
            _state(state),
            str(s.consecutive_failures) if s else "0",
            _rates(s),
            str(s.successes + s.failures + s.ignored) if s else "0",
            str(s.rejections) if s else "0",
            _next_probe(s),
        )
    return table


class TransitionPrinter(BreakerListener):
    """Prints one line per transition (above the live table when there is one).

    With ``stats`` (the transport's ``stats``), an opening also says when the next probe is due,
    which shows a ``Retry-After`` lengthening the open period. Listeners run outside the
    transport's lock, so reading its stats from here is allowed.
    """

    def __init__(
        self,
        console: Console,
        names: Mapping[str, str],
        started: float,
        stats: Callable[[], Mapping[str, CircuitStats]] | None = None,
    ) -> None:
        self.console = console
        self.names = names  # key -> upstream name
        self.started = started
        self.stats = stats

    def on_state_change(self, change: StateChange) -> None:
        line = Text(
            f"{change.at - self.started:6.2f}s  {self.names.get(change.key, change.key):<12}"
        )
        line.append_text(_state(change.old))
        line.append(" -> ")
        line.append_text(_state(change.new))
        reason = change.reason
        if change.new is CircuitState.OPEN and self.stats is not None:
            now = self.stats().get(change.key)
            if now is not None and now.retry_after is not None and now.state is change.new:
                reason += f"; probe in {now.retry_after:.1f}s"
        line.append(f"  ({reason})", style="dim")
        self.console.print(line)


def summary_renderable(summary: DemoSummary) -> Group:
    table = Table(
        title="summary",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("upstream", no_wrap=True, min_width=11)
    table.add_column("sent", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("saved", justify="right")
    table.add_column("opened", justify="right")
    table.add_column("detected", justify="right")
    table.add_column("recovered", justify="right")
    table.add_column("final", no_wrap=True, min_width=9)
    for host in summary.hosts:
        table.add_row(
            host.name,
            str(host.sent),
            str(host.failures),
            str(host.rejected),
            f"{host.opened}x",
            _seconds(host.time_to_detect),
            _seconds(host.time_to_recover) if host.fault and host.fault[1] is not None else "-",
            _state(host.final_state),
        )
    total = summary.sent + summary.rejected
    share = summary.rejected / total if total else 0.0
    lines = [
        Text(
            f"{summary.rejected} of {total} requests ({share:.0%}) failed fast instead of going to "
            f"a broken upstream, saving about {summary.wait_avoided:.1f}s of waiting "
            f"({summary.concurrency} workers, {summary.elapsed:.1f}s)."
        ),
        Text(
            "sent: reached the upstream; failed: of those, counted as failures; saved: failed "
            "fast instead of being sent; detected: from the start of the fault to the circuit "
            "opening; recovered: from the upstream coming back to the circuit closing.",
            style="dim",
        ),
    ]
    if summary.errors:
        seen = ", ".join(f"{name} x{count}" for name, count in sorted(summary.errors.items()))
        lines.append(Text(f"transport errors the callers saw: {seen}", style="dim"))
    return Group(table, *lines)


def upstream_lines(upstreams: Sequence[Upstream]) -> Group:
    """Who is who, printed once before the traffic starts."""
    lines = [Text(f"{u.name:<12} {u.url:<24} {u.script.description}") for u in upstreams]
    return Group(*lines)
