"""Sliding windows for the rate rules: the last N calls, or the calls of the last T seconds.

Both are O(1) per call and hold a fixed amount of memory per circuit, whatever the traffic. They
store counts only (calls, failures, slow calls); the circuit decides what the counts mean.
"""

from __future__ import annotations

import math

from ._policy import TIME_WINDOW_BUCKETS, BreakerPolicy

_FAILED = 1
_SLOW = 2


class CountWindow:
    """The outcomes of the last ``size`` calls, in a ring of one byte per call."""

    __slots__ = ("_pos", "_ring", "calls", "failures", "slow")

    def __init__(self, size: int) -> None:
        self._ring = bytearray(size)
        self._pos = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def record(self, failed: bool, slow: bool, now: float) -> None:
        ring = self._ring
        pos = self._pos
        if self.calls == len(ring):  # full: the oldest outcome leaves
            old = ring[pos]
            self.failures -= old & _FAILED
            self.slow -= (old & _SLOW) >> 1
        else:
            self.calls += 1
        ring[pos] = (_FAILED if failed else 0) | (_SLOW if slow else 0)
        self.failures += failed
        self.slow += slow
        pos += 1
        self._pos = 0 if pos == len(ring) else pos

    def advance(self, now: float) -> None:
        """A count window does not age."""

    def clear(self) -> None:
        self._ring = bytearray(len(self._ring))
        self._pos = self.calls = self.failures = self.slow = 0


class TimeWindow:
    """The outcomes of the last ``duration`` seconds, in ``TIME_WINDOW_BUCKETS`` buckets.

    Bucket ``k`` covers ``[k * width, (k + 1) * width)`` on the circuit's clock, with
    ``width = duration / TIME_WINDOW_BUCKETS``. At time ``t`` the window holds the current bucket
    and the ``TIME_WINDOW_BUCKETS - 1`` before it, so an outcome stays between ``duration - width``
    and ``duration`` seconds. An outcome enters the bucket of the moment it settles.
    """

    __slots__ = ("_buckets", "_head", "_width", "calls", "failures", "slow")

    def __init__(self, duration: float) -> None:
        self._width = duration / TIME_WINDOW_BUCKETS
        # Flat list: calls, failures and slow of bucket i at 3*i, 3*i + 1, 3*i + 2.
        self._buckets = [0] * (3 * TIME_WINDOW_BUCKETS)
        self._head: int | None = None
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def advance(self, now: float) -> None:
        """Drop the buckets that have aged out by ``now`` (at most one pass over the buckets)."""
        index = math.floor(now / self._width)
        head = self._head
        if head is None:
            self._head = index
            return
        if index <= head:  # same bucket, or a clock that stepped back: keep the newest bucket
            return
        buckets = self._buckets
        for step in range(head + 1, head + 1 + min(index - head, TIME_WINDOW_BUCKETS)):
            base = 3 * (step % TIME_WINDOW_BUCKETS)
            self.calls -= buckets[base]
            self.failures -= buckets[base + 1]
            self.slow -= buckets[base + 2]
            buckets[base] = buckets[base + 1] = buckets[base + 2] = 0
        self._head = index

    def record(self, failed: bool, slow: bool, now: float) -> None:
        self.advance(now)
        assert self._head is not None
        base = 3 * (self._head % TIME_WINDOW_BUCKETS)
        buckets = self._buckets
        buckets[base] += 1
        buckets[base + 1] += failed
        buckets[base + 2] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow

    def clear(self) -> None:
        self._buckets = [0] * (3 * TIME_WINDOW_BUCKETS)
        self._head = None
        self.calls = self.failures = self.slow = 0


Window = CountWindow | TimeWindow


def window_for(policy: BreakerPolicy) -> Window | None:
    """The window a policy's rate rules need, or None when it has no rate rule."""
    if not policy.has_window:
        return None
    if policy.window_duration is not None:
        return TimeWindow(float(policy.window_duration))
    return CountWindow(policy.window_size)
