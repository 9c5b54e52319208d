"""Per-host circuit breakers for httpx, as a drop-in transport.

::

    import httpx
    from breaker_transport import AsyncCircuitBreakerTransport, BreakerPolicy

    client = httpx.AsyncClient(
        transport=AsyncCircuitBreakerTransport(policy=BreakerPolicy(failure_threshold=5))
    )
"""

import logging as _logging

from ._events import BreakerListener
from ._httpx import (
    AsyncCircuitBreakerTransport,
    CircuitBreakerTransport,
    CircuitOpenError,
    async_breaker_client,
    breaker_client,
)
from ._policy import (
    DEFAULT_FAILURE_EXCEPTIONS,
    DEFAULT_FAILURE_STATUS_CODES,
    TIME_WINDOW_BUCKETS,
    BreakerPolicy,
    FailureKind,
)
from ._types import CallEvent, CircuitState, CircuitStats, Mode, Outcome, StateChange
from .status import status_app

__all__ = [
    "DEFAULT_FAILURE_EXCEPTIONS",
    "DEFAULT_FAILURE_STATUS_CODES",
    "TIME_WINDOW_BUCKETS",
    "AsyncCircuitBreakerTransport",
    "BreakerListener",
    "BreakerPolicy",
    "CallEvent",
    "CircuitBreakerTransport",
    "CircuitOpenError",
    "CircuitState",
    "CircuitStats",
    "FailureKind",
    "Mode",
    "Outcome",
    "StateChange",
    "async_breaker_client",
    "breaker_client",
    "status_app",
]

__version__ = "0.1.0"

# A library logs; the application decides where logs go.
_logging.getLogger("breaker_transport").addHandler(_logging.NullHandler())
