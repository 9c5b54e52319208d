"""``BreakerPolicy``: the frozen, validated description of when a circuit opens and how it recovers.

The policy names kinds of failure (``FailureKind``), never a particular HTTP library's exception
classes, so the same policy objects serve the httpx and the httpx2 transports. Each transport
flavour maps the kinds to its own classes (see ``_classify.py``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias, Union

from ._types import Mode, Outcome


class FailureKind(str, enum.Enum):
    """Library-independent kinds of transport exception.

    The defaults (``DEFAULT_FAILURE_EXCEPTIONS``) are the kinds that mean the network or the server
    failed. ``POOL_TIMEOUT`` (our own connection pool is full; the pool is shared by every host),
    ``LOCAL_PROTOCOL`` and ``UNSUPPORTED_PROTOCOL`` (client misuse), ``PROXY`` and ``CLOSE`` are
    left out, so they count as ignored unless a policy adds them.
    """

    CONNECT = "connect"
    CONNECT_TIMEOUT = "connect_timeout"
    READ = "read"
    READ_TIMEOUT = "read_timeout"
    WRITE = "write"
    WRITE_TIMEOUT = "write_timeout"
    REMOTE_PROTOCOL = "remote_protocol"
    POOL_TIMEOUT = "pool_timeout"
    LOCAL_PROTOCOL = "local_protocol"
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"
    PROXY = "proxy"
    CLOSE = "close"

    def __str__(self) -> str:
        return self.value


#: An entry of ``failure_exceptions``: a kind, or an exception class of your own library.
FailureMatcher: TypeAlias = Union[FailureKind, "type[BaseException]"]

#: ``classify(request, response, exception) -> Outcome | None``; None falls back to the defaults.
Classifier: TypeAlias = Callable[[Any, Any, Any], "Outcome | None"]

DEFAULT_FAILURE_EXCEPTIONS: frozenset[FailureMatcher] = frozenset(
    {
        FailureKind.CONNECT,
        FailureKind.CONNECT_TIMEOUT,
        FailureKind.READ,
        FailureKind.READ_TIMEOUT,
        FailureKind.WRITE,
        FailureKind.WRITE_TIMEOUT,
        FailureKind.REMOTE_PROTOCOL,
    }
)

#: Every 5xx. 429 is deliberately absent: it is backpressure, not a broken host.
DEFAULT_FAILURE_STATUS_CODES: frozenset[int] = frozenset(range(500, 600))

#: Buckets of a time-based window (``window_duration``); each spans ``window_duration / 10``.
TIME_WINDOW_BUCKETS = 10

# The longest period a duration field may name: 30 days. Longer is a typo or a unit mistake.
_MAX_SECONDS = 30 * 24 * 3600.0
_MAX_COUNT = 10_000_000


def _finite(value: float) -> bool:
    """``math.isfinite`` that also answers for ints too large for a float (10**400: False)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _check_int(name: str, value: object, *, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        expected = f"an int >= {minimum}" + (" or None" if optional else "")
        raise TypeError(f"BreakerPolicy.{name} must be {expected}, got {_describe(value)}")
    if value < minimum or value > _MAX_COUNT:
        raise ValueError(
            f"BreakerPolicy.{name} must be between {minimum} and {_MAX_COUNT}, got {value!r}"
        )


def _check_seconds(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        expected = "a number of seconds > 0" + (" or None" if optional else "")
        raise TypeError(f"BreakerPolicy.{name} must be {expected}, got {_describe(value)}")
    if not _finite(value) or value <= 0 or value > _MAX_SECONDS:
        raise ValueError(
            f"BreakerPolicy.{name} must be a finite number of seconds > 0 and at most "
            f"{_MAX_SECONDS:.0f} (30 days), got {value!r}"
        )


def _check_fraction(
    name: str, value: object, *, low: float, high: float, low_open: bool, optional: bool = False
) -> None:
    if value is None and optional:
        return
    bracket = "(" if low_open else "["
    span = f"{bracket}{low:g}, {high:g}]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        expected = f"a number in {span}" + (" or None" if optional else "")
        raise TypeError(f"BreakerPolicy.{name} must be {expected}, got {_describe(value)}")
    too_low = value <= low if low_open else value < low
    if not _finite(value) or too_low or value > high:
        raise ValueError(f"BreakerPolicy.{name} must be in {span}, got {value!r}")


def _status_codes(value: object) -> frozenset[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(
            "BreakerPolicy.failure_status_codes must be a collection of int status codes, "
            f"got {_describe(value)}"
        )
    codes = frozenset(value)
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(
                "BreakerPolicy.failure_status_codes must hold int status codes, "
                f"got {_describe(code)}"
            )
        if not 100 <= code <= 599:
            raise ValueError(
                f"BreakerPolicy.failure_status_codes holds {code!r}, not an HTTP status (100-599)"
            )
    return codes


def _failure_matchers(value: object) -> frozenset[FailureMatcher]:
    if isinstance(value, (str, bytes, type)) or not isinstance(value, Iterable):
        raise TypeError(
            "BreakerPolicy.failure_exceptions must be a collection of FailureKind members or "
            f"exception classes, got {_describe(value)}"
        )
    matchers: set[FailureMatcher] = set()
    for item in value:
        if isinstance(item, FailureKind):
            matchers.add(item)
        elif isinstance(item, str):
            try:
                matchers.add(FailureKind(item))
            except ValueError:
                names = ", ".join(k.value for k in FailureKind)
                raise ValueError(
                    f"BreakerPolicy.failure_exceptions holds {item!r}, not a FailureKind "
                    f"(one of: {names})"
                ) from None
        elif isinstance(item, type) and issubclass(item, BaseException):
            matchers.add(item)
        else:
            raise TypeError(
                "BreakerPolicy.failure_exceptions must hold FailureKind members or exception "
                f"classes, got {_describe(item)}"
            )
    return frozenset(matchers)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a circuit opens and how it recovers. Frozen; every field is validated at construction.

    The common case needs one or two fields::

        BreakerPolicy(failure_threshold=5, recovery_timeout=30.0)

    Trip rules (whichever trips first opens the circuit):

    - ``failure_threshold`` consecutive failures (None turns this rule off);
    - ``failure_rate_threshold``: the failure rate over the sliding window, once the window holds
      at least ``minimum_calls`` outcomes. The window is the last ``window_size`` calls, or, when
      ``window_duration`` is set, the calls of the last ``window_duration`` seconds (kept in
      ``TIME_WINDOW_BUCKETS`` buckets, so its memory does not grow with traffic);
    - ``slow_call_duration`` with ``slow_call_rate_threshold``: the share of calls whose headers
      took longer than ``slow_call_duration`` seconds, over the same window.

    Recovery: after ``recovery_timeout`` seconds open, up to ``half_open_max_calls`` probes go
    through; ``success_threshold`` successful probes close the circuit, a failed (or slow) probe
    opens it again for ``recovery_timeout * recovery_backoff ** n`` seconds (n = re-opens in a row),
    capped by ``max_recovery_timeout`` and spread by ``recovery_jitter``. A probe whose response is
    never closed loses its slot after ``probe_timeout`` seconds.
    """

    failure_threshold: int | None = 5
    recovery_timeout: float = 60.0
    half_open_max_calls: int = 1
    success_threshold: int = 1
    probe_timeout: float = 30.0
    failure_status_codes: frozenset[int] = DEFAULT_FAILURE_STATUS_CODES
    failure_exceptions: frozenset[FailureMatcher] = DEFAULT_FAILURE_EXCEPTIONS
    classify: Classifier | None = field(default=None, compare=False)
    # Rate rules over a sliding window.
    failure_rate_threshold: float | None = None
    minimum_calls: int = 10
    window_size: int = 100
    window_duration: float | None = None
    slow_call_duration: float | None = None
    slow_call_rate_threshold: float = 1.0
    # Open periods that adapt.
    recovery_backoff: float = 1.0
    max_recovery_timeout: float | None = None
    recovery_jitter: float = 0.0
    respect_retry_after: bool = True
    mode: Mode = Mode.ENFORCE

    def __post_init__(self) -> None:
        _check_int("failure_threshold", self.failure_threshold, minimum=1, optional=True)
        _check_seconds("recovery_timeout", self.recovery_timeout)
        _check_int("half_open_max_calls", self.half_open_max_calls, minimum=1)
        _check_int("success_threshold", self.success_threshold, minimum=1)
        _check_seconds("probe_timeout", self.probe_timeout)
        object.__setattr__(self, "failure_status_codes", _status_codes(self.failure_status_codes))
        object.__setattr__(self, "failure_exceptions", _failure_matchers(self.failure_exceptions))
        if self.classify is not None and not callable(self.classify):
            raise TypeError(
                "BreakerPolicy.classify must be a callable (request, response, exception) -> "
                f"Outcome | None, or None; got {_describe(self.classify)}"
            )
        _check_fraction(
            "failure_rate_threshold",
            self.failure_rate_threshold,
            low=0.0,
            high=1.0,
            low_open=True,
            optional=True,
        )
        _check_int("minimum_calls", self.minimum_calls, minimum=1)
        _check_int("window_size", self.window_size, minimum=1)
        _check_seconds("window_duration", self.window_duration, optional=True)
        if self.window_duration is None and self.minimum_calls > self.window_size:
            raise ValueError(
                f"BreakerPolicy.minimum_calls ({self.minimum_calls!r}) may not exceed "
                f"window_size ({self.window_size!r}): the window could never hold enough calls"
            )
        _check_seconds("slow_call_duration", self.slow_call_duration, optional=True)
        _check_fraction(
            "slow_call_rate_threshold",
            self.slow_call_rate_threshold,
            low=0.0,
            high=1.0,
            low_open=True,
        )
        if isinstance(self.recovery_backoff, bool) or not isinstance(
            self.recovery_backoff, (int, float)
        ):
            raise TypeError(
                "BreakerPolicy.recovery_backoff must be a number >= 1, "
                f"got {_describe(self.recovery_backoff)}"
            )
        if not _finite(self.recovery_backoff) or not 1 <= self.recovery_backoff <= 100:
            raise ValueError(
                "BreakerPolicy.recovery_backoff must be a multiplier between 1 and 100, "
                f"got {self.recovery_backoff!r}"
            )
        _check_seconds("max_recovery_timeout", self.max_recovery_timeout, optional=True)
        if (
            self.max_recovery_timeout is not None
            and self.max_recovery_timeout < self.recovery_timeout
        ):
            raise ValueError(
                f"BreakerPolicy.max_recovery_timeout ({self.max_recovery_timeout!r}) must be at "
                f"least recovery_timeout ({self.recovery_timeout!r})"
            )
        _check_fraction("recovery_jitter", self.recovery_jitter, low=0.0, high=1.0, low_open=False)
        if not isinstance(self.respect_retry_after, bool):
            raise TypeError(
                "BreakerPolicy.respect_retry_after must be a bool, "
                f"got {_describe(self.respect_retry_after)}"
            )
        object.__setattr__(self, "mode", coerce_mode(self.mode, "BreakerPolicy.mode"))
        if (
            self.failure_threshold is None
            and self.failure_rate_threshold is None
            and self.slow_call_duration is None
        ):
            raise ValueError(
                "BreakerPolicy has no trip rule: failure_threshold=None needs "
                "failure_rate_threshold or slow_call_duration, or the circuit could never open"
            )

    @property
    def has_window(self) -> bool:
        """True when a rate rule needs the sliding window."""
        return self.failure_rate_threshold is not None or self.slow_call_duration is not None

    @property
    def effective_max_recovery_timeout(self) -> float:
        """The cap on open periods: ``max_recovery_timeout``, else max(300 s, recovery_timeout)."""
        if self.max_recovery_timeout is not None:
            return float(self.max_recovery_timeout)
        return max(300.0, float(self.recovery_timeout))


def coerce_mode(value: object, name: str) -> Mode:
    """Accept a ``Mode`` or its string value; anything else is an error naming ``name``."""
    if isinstance(value, Mode):
        return value
    if isinstance(value, str):
        try:
            return Mode(value)
        except ValueError:
            pass
        names = ", ".join(repr(m.value) for m in Mode)
        raise ValueError(f"{name} must be one of {names}, got {value!r}")
    raise TypeError(f"{name} must be a Mode or one of its names, got {_describe(value)}")
