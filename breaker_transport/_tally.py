"""What the metric exporters share: per-circuit counts kept by a listener, read at collection.

Both exporters (``breaker_transport.otel``, ``breaker_transport.prometheus``) report *observed*
instruments: the hot path only bumps an integer in a ``CallTally`` (one lock, one dict lookup),
and the metric library reads the totals when it collects. That keeps the per-request cost flat
whatever the metric library does, and it is what lets an evicted circuit's series disappear: a
series the collection no longer reports is gone (OpenTelemetry's asynchronous instruments and a
Prometheus custom collector both work that way), while a synchronous counter's series would live
for ever.

Cardinality is bounded by the transport's circuits: label values are circuit keys (origins, or
what ``key=`` returns; never a URL with a path), a circuit's series go when it is evicted
(``on_evict``), and each collection also drops any counts whose circuit the transport no longer
holds (a call still in flight when its circuit was evicted reports after the eviction).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ._events import BreakerListener
from ._types import CallEvent, CircuitState, CircuitStats, StateChange

#: The states in label order, and the value the state gauge reports for each.
STATES: tuple[CircuitState, ...] = (CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN)
STATE_VALUE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
RESULTS = ("success", "failure", "ignored", "rejected")

#: What each metric means, shared by both exporters (the names differ by ecosystem only).
DESCRIPTIONS = {
    "requests": "Requests through the circuit: sent, or rejected while open or half-open",
    "failures": "Requests whose outcome counted as a failure",
    "rejections": "Requests failed fast by an open or half-open circuit (not sent)",
    "transitions": "State transitions of the circuit, by the state entered",
    "state": "Current state of the circuit: 0 closed, 1 half-open, 2 open",
}
COUNTERS = ("requests", "failures", "rejections", "transitions")

_WIDTH = len(RESULTS)
_TRANSITIONS = len(STATES) * _WIDTH  # offset of the transition counts in a circuit's list
_SIZE = _TRANSITIONS + len(STATES)
_STATE_OFFSET = {state: i * _WIDTH for i, state in enumerate(STATES)}
_RESULT_INDEX = {result: i for i, result in enumerate(RESULTS)}
_ENTERED_INDEX = {state: _TRANSITIONS + i for i, state in enumerate(STATES)}


class Watchable(Protocol):
    """A breaker transport, as the exporters use it (both httpx transports, any flavour)."""

    def stats(self) -> Mapping[str, CircuitStats]: ...

    def add_listener(self, listener: BreakerListener) -> None: ...


@dataclass(frozen=True)
class Counts:
    """One circuit's totals since the exporter started watching it, by admitted state."""

    by_state: Mapping[CircuitState, Mapping[str, int]]
    transitions: Mapping[CircuitState, int]  # transitions *into* each state

    def requests(self, state: CircuitState) -> int:
        return sum(self.by_state[state].values())

    def value(self, counter: str, state: CircuitState) -> int:
        """The value of one of ``COUNTERS`` for one state."""
        if counter == "requests":
            return self.requests(state)
        if counter == "failures":
            return self.by_state[state]["failure"]
        if counter == "rejections":
            return self.by_state[state]["rejected"]
        return self.transitions[state]


def counter_points(
    counts: Mapping[str, Counts], counter: str
) -> Iterator[tuple[str, CircuitState, int]]:
    """(circuit, state, value) of one counter, leaving out zeros (a series appears once used)."""
    for key, tally in counts.items():
        for state in STATES:
            value = tally.value(counter, state)
            if value:
                yield key, state, value


class CallTally(BreakerListener):
    """Counts every call by circuit, admitted state and result; thread-safe, bounded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}

    def on_call(self, event: CallEvent) -> None:
        index = _STATE_OFFSET[event.state] + _RESULT_INDEX[event.result]
        with self._lock:
            counts = self._counts.get(event.key)
            if counts is None:
                counts = self._counts[event.key] = [0] * _SIZE
            counts[index] += 1

    def on_state_change(self, change: StateChange) -> None:
        with self._lock:
            counts = self._counts.get(change.key)
            if counts is None:
                counts = self._counts[change.key] = [0] * _SIZE
            counts[_ENTERED_INDEX[change.new]] += 1

    def on_evict(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)

    def retain(self, keys: Collection[str]) -> None:
        """Forget the counts of every circuit not in ``keys`` (the transport's current ones)."""
        with self._lock:
            for key in [k for k in self._counts if k not in keys]:
                del self._counts[key]

    def snapshot(self) -> dict[str, Counts]:
        with self._lock:
            raw = {key: list(counts) for key, counts in self._counts.items()}
        return {
            key: Counts(
                by_state={
                    state: {result: counts[offset + i] for i, result in enumerate(RESULTS)}
                    for state, offset in _STATE_OFFSET.items()
                },
                transitions={state: counts[i] for state, i in _ENTERED_INDEX.items()},
            )
            for key, counts in raw.items()
        }


class _Watched:
    __slots__ = ("labels", "tally", "transport")

    def __init__(self, transport: Watchable, labels: Mapping[str, str]) -> None:
        self.transport = weakref.ref(transport)
        self.tally = CallTally()
        self.labels = dict(labels)


def check_labels(labels: Mapping[str, str] | None, reserved: Collection[str]) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels must be a mapping of str to str, got {labels!r}")
    checked: dict[str, str] = {}
    for name, value in labels.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"labels must map str to str, got {name!r}: {value!r}")
        if name in reserved:
            raise ValueError(f"label {name!r} is reserved for the exporter's own use")
        if not name.isidentifier():
            raise ValueError(f"label name {name!r} must be an identifier (letters, digits, _)")
        checked[name] = value
    return checked


class WatchList:
    """The transports one exporter reports, each with its own tally and constant labels.

    Every transport must use the same label names, so the series of one metric line up.
    A transport that has been garbage-collected is dropped at the next collection.
    """

    reserved = ("circuit", "state")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: list[_Watched] = []
        self.closed = False

    def add(self, transport: Any, labels: Mapping[str, str] | None) -> None:
        if not callable(getattr(transport, "stats", None)) or not callable(
            getattr(transport, "add_listener", None)
        ):
            raise TypeError(
                "expected a breaker transport (AsyncCircuitBreakerTransport or "
                f"CircuitBreakerTransport), got {transport!r} ({type(transport).__name__})"
            )
        checked = check_labels(labels, self.reserved)
        with self._lock:
            for watched in self._watched:
                if watched.transport() is transport:
                    raise ValueError(f"{transport!r} is watched already")
            if self._watched and not (checked and self._watched[0].labels):
                raise ValueError(
                    "to watch several transports with one exporter, give each of them labels= "
                    "that tell them apart, the first one too (e.g. {'client': 'payments'})"
                )
            if self._watched and set(checked) != set(self._watched[0].labels):
                raise ValueError(
                    "every watched transport needs the same label names: "
                    f"{sorted(self._watched[0].labels)} so far, got {sorted(checked)}"
                )
            if any(watched.labels == checked for watched in self._watched):
                raise ValueError(f"another watched transport has the labels {checked!r} already")
            entry = _Watched(transport, checked)
            self._watched.append(entry)
        transport.add_listener(entry.tally)

    @property
    def label_names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._watched[0].labels) if self._watched else ()

    def _live(self) -> list[_Watched]:
        with self._lock:
            self._watched = [w for w in self._watched if w.transport() is not None]
            return list(self._watched)

    def read_counts(self) -> Iterator[tuple[Mapping[str, str], dict[str, Counts]]]:
        """Each live transport's labels and call counts (cheap: no stats are taken)."""
        if self.closed:
            return
        for entry in self._live():
            yield entry.labels, entry.tally.snapshot()

    def read_stats(self) -> Iterator[tuple[Mapping[str, str], Mapping[str, CircuitStats]]]:
        """Each live transport's labels and ``stats()``; prunes counts of circuits it dropped."""
        if self.closed:
            return
        for entry in self._live():
            transport = entry.transport()
            if transport is None:
                continue
            stats = transport.stats()
            entry.tally.retain(stats.keys())
            yield entry.labels, stats
