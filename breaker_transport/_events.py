"""Listeners: where transitions, per-call results and evictions go, outside every lock.

A listener's exception is logged and never reaches the request that triggered it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from ._types import (
    CallEvent,
    CircuitState,
    Event,
    Eviction,
    Notice,
    Outcome,
    StateChange,
    call_event,
)

if TYPE_CHECKING:
    from ._circuit import Ticket

logger = logging.getLogger("breaker_transport")

_LOG_LEVEL = {
    CircuitState.OPEN: logging.WARNING,
    CircuitState.HALF_OPEN: logging.INFO,
    CircuitState.CLOSED: logging.INFO,
}


class BreakerListener:
    """Subclass and override what you need; exporters (metrics, tracing) are listeners.

    ``on_call`` is only invoked (and its ``CallEvent`` only built) when some listener overrides
    it, so a transport without per-call listeners pays nothing for the hook.
    """

    def on_state_change(self, change: StateChange) -> None:
        """A circuit moved from ``change.old`` to ``change.new``."""

    def on_call(self, event: CallEvent) -> None:
        """One request settled or was rejected."""

    def on_evict(self, key: str) -> None:
        """The circuit of ``key`` was dropped to respect ``max_circuits``."""


class _StateChangeCallback(BreakerListener):
    """Adapts the transport's ``on_state_change=`` callable."""

    def __init__(self, callback: Callable[[StateChange], object]) -> None:
        self.callback = callback

    def on_state_change(self, change: StateChange) -> None:
        self.callback(change)


def _overrides(listener: BreakerListener, name: str) -> bool:
    return getattr(type(listener), name, None) is not getattr(BreakerListener, name)


class Dispatcher:
    """Fans events out to the listeners of one transport."""

    __slots__ = ("call_listeners", "evict_listeners", "state_listeners")

    def __init__(
        self,
        on_state_change: Callable[[StateChange], object] | None,
        listeners: Iterable[BreakerListener],
    ) -> None:
        if on_state_change is not None and not callable(on_state_change):
            raise TypeError(
                "on_state_change must be a callable taking a StateChange, got "
                f"{on_state_change!r} ({type(on_state_change).__name__})"
            )
        if isinstance(listeners, (str, bytes)) or not isinstance(listeners, Iterable):
            raise TypeError(f"listeners must be a sequence of BreakerListener, got {listeners!r}")
        every: list[BreakerListener] = []
        if on_state_change is not None:
            every.append(_StateChangeCallback(on_state_change))
        for listener in listeners:
            if not isinstance(listener, BreakerListener):
                raise TypeError(
                    "listeners must hold BreakerListener instances (subclass it), got "
                    f"{listener!r} ({type(listener).__name__})"
                )
            every.append(listener)
        self.state_listeners: Sequence[BreakerListener] = tuple(
            x for x in every if _overrides(x, "on_state_change")
        )
        self.call_listeners: Sequence[BreakerListener] = tuple(
            x for x in every if _overrides(x, "on_call")
        )
        self.evict_listeners: Sequence[BreakerListener] = tuple(
            x for x in every if _overrides(x, "on_evict")
        )

    def add(self, listener: BreakerListener) -> None:
        """Attach one more listener (exporters do this when bound to a transport)."""
        if not isinstance(listener, BreakerListener):
            raise TypeError(f"expected a BreakerListener, got {listener!r}")
        if _overrides(listener, "on_state_change"):
            self.state_listeners = (*self.state_listeners, listener)
        if _overrides(listener, "on_call"):
            self.call_listeners = (*self.call_listeners, listener)
        if _overrides(listener, "on_evict"):
            self.evict_listeners = (*self.evict_listeners, listener)

    def emit(self, events: Iterable[Event]) -> None:
        for event in events:
            if isinstance(event, CallEvent):
                self.call(event)
                continue
            if isinstance(event, Notice):
                logger.log(event.level, event.message, *event.args, exc_info=event.exc)
                continue
            if isinstance(event, Eviction):
                for listener in self.evict_listeners:
                    try:
                        listener.on_evict(event.key)
                    except Exception:
                        logger.exception("breaker listener %r failed in on_evict", listener)
                continue
            logger.log(
                _LOG_LEVEL[event.new],
                "circuit %s %s -> %s: %s",
                event.key,
                event.old.value,
                event.new.value,
                event.reason,
            )
            for listener in self.state_listeners:
                try:
                    listener.on_state_change(event)
                except Exception:
                    logger.exception("breaker listener %r failed in on_state_change", listener)

    def settled(
        self, ticket: Ticket, outcome: Outcome, slow: bool, stale: bool | None, now: float
    ) -> None:
        """Tell the call listeners how an admitted call settled (None: it was counted before, as
        an expired probe, and reports nothing now)."""
        if self.call_listeners and stale is not None:
            result = "rejected" if ticket.shadow else outcome.value
            self.call(
                call_event(
                    ticket.circuit.key,
                    result,
                    ticket.state,
                    now - ticket.admitted_at,
                    slow,
                    stale,
                    ticket.shadow,
                )
            )

    def call(self, event: CallEvent) -> None:
        for listener in self.call_listeners:
            try:
                listener.on_call(event)
            except Exception:
                logger.exception("breaker listener %r failed in on_call", listener)
