"""What the demo saw, as data: a listener records it, ``build_summary`` turns it into a result.

The summary is plain frozen dataclasses (``DemoSummary`` of ``HostSummary``), so the CLI renders
it, the plot draws it and a test asserts on it without scraping text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .._events import BreakerListener
from .._policy import BreakerPolicy
from .._types import CallEvent, CircuitState, CircuitStats, StateChange
from .upstreams import Upstream


@dataclass(frozen=True)
class Transition:
    """One state change of one circuit, at ``t`` seconds since the traffic started."""

    t: float
    old: CircuitState
    new: CircuitState
    reason: str


@dataclass(frozen=True)
class Segment:
    """A stretch of time one circuit spent in one state (seconds since the start)."""

    state: CircuitState
    start: float
    end: float


@dataclass(frozen=True)
class HostSummary:
    """One upstream's story.

    ``sent`` counts the requests that reached the upstream; ``rejected`` those that failed fast
    instead (the breaker's saving). ``time_to_detect`` is seconds from the start of the fault to
    the circuit's first opening; ``time_to_recover`` from the end of the fault to the circuit's
    closing again (None when it did not happen within the run). ``wait_avoided`` estimates the
    caller time the rejections saved: rejections times the mean duration of this host's failed or
    slow calls.
    """

    name: str
    key: str
    description: str
    fault: tuple[float, float | None] | None
    sent: int
    successes: int
    failures: int
    ignored: int
    rejected: int
    opened: int
    final_state: CircuitState
    time_to_detect: float | None
    time_to_recover: float | None
    wait_avoided: float
    transitions: tuple[Transition, ...]
    timeline: tuple[Segment, ...]

    @property
    def requests(self) -> int:
        return self.sent + self.rejected

    @property
    def ever_opened(self) -> bool:
        return self.opened > 0

    @property
    def recovered(self) -> bool:
        """The circuit opened and closed again after the upstream came back."""
        return self.time_to_recover is not None


@dataclass(frozen=True)
class DemoSummary:
    """The whole run: ``elapsed`` seconds of traffic from ``concurrency`` workers."""

    elapsed: float
    planned: float
    concurrency: int
    policy: BreakerPolicy
    hosts: tuple[HostSummary, ...]
    errors: Mapping[str, int] = field(default_factory=dict)

    def host(self, name: str) -> HostSummary:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(f"no upstream named {name!r}; the demo has {[h.name for h in self.hosts]}")

    @property
    def sent(self) -> int:
        return sum(h.sent for h in self.hosts)

    @property
    def rejected(self) -> int:
        return sum(h.rejected for h in self.hosts)

    @property
    def wait_avoided(self) -> float:
        return sum(h.wait_avoided for h in self.hosts)


class Recorder(BreakerListener):
    """Records every transition and the durations of bad calls, per circuit key.

    The demo's transport is async and single-loop, so the listener needs no lock.
    """

    def __init__(self, started: float) -> None:
        self.started = started
        self.transitions: dict[str, list[Transition]] = defaultdict(list)
        self._bad_time: dict[str, float] = defaultdict(float)
        self._bad_calls: dict[str, int] = defaultdict(int)

    def on_state_change(self, change: StateChange) -> None:
        self.transitions[change.key].append(
            Transition(change.at - self.started, change.old, change.new, change.reason)
        )

    def on_call(self, event: CallEvent) -> None:
        if event.duration is not None and (event.result == "failure" or event.slow):
            self._bad_time[event.key] += event.duration
            self._bad_calls[event.key] += 1

    def mean_bad_call(self, key: str) -> float:
        calls = self._bad_calls.get(key, 0)
        return self._bad_time[key] / calls if calls else 0.0


def _timeline(transitions: Sequence[Transition], end: float) -> tuple[Segment, ...]:
    segments = []
    state, since = CircuitState.CLOSED, 0.0
    for change in transitions:
        if change.t > since:
            segments.append(Segment(state, since, change.t))
        state, since = change.new, max(since, change.t)
    segments.append(Segment(state, since, max(since, end)))
    return tuple(segments)


def summarise_host(
    upstream: Upstream,
    key: str,
    stats: CircuitStats | None,
    recorder: Recorder,
    duration: float,
    elapsed: float,
) -> HostSummary:
    transitions = recorder.transitions.get(key, [])
    window = upstream.script.window(duration)
    opens = [t for t in transitions if t.new is CircuitState.OPEN]
    detect = recover = None
    if window is not None:
        start, end = window
        first_open = next((t.t for t in opens if t.t >= start), None)
        if first_open is not None:
            detect = first_open - start
        if end is not None and opens:
            closed = next(
                (t.t for t in transitions if t.new is CircuitState.CLOSED and t.t >= end), None
            )
            if closed is not None:
                recover = closed - end
    if stats is None:  # the host never saw a request (a zero-length run)
        stats = CircuitStats(CircuitState.CLOSED, 0, 0, 0, 0, 0, 0, None)
    return HostSummary(
        name=upstream.name,
        key=key,
        description=upstream.script.description,
        fault=window,
        sent=stats.successes + stats.failures + stats.ignored,
        successes=stats.successes,
        failures=stats.failures,
        ignored=stats.ignored,
        rejected=stats.rejections,
        opened=len(opens),
        final_state=stats.state,
        time_to_detect=detect,
        time_to_recover=recover,
        wait_avoided=stats.rejections * recorder.mean_bad_call(key),
        transitions=tuple(transitions),
        timeline=_timeline(transitions, elapsed),
    )
