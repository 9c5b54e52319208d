"""BreakerPolicy and transport arguments: friendly defaults, clear errors naming field and value."""

from __future__ import annotations

import math

import httpx
import pytest

from breaker_transport import (
    DEFAULT_FAILURE_EXCEPTIONS,
    AsyncCircuitBreakerTransport,
    BreakerPolicy,
    CircuitBreakerTransport,
    FailureKind,
    Mode,
)


def test_defaults() -> None:
    p = BreakerPolicy()
    assert (p.failure_threshold, p.recovery_timeout, p.half_open_max_calls) == (5, 60.0, 1)
    assert (p.success_threshold, p.probe_timeout) == (1, 30.0)
    assert p.failure_status_codes == frozenset(range(500, 600))
    assert 429 not in p.failure_status_codes
    assert p.failure_exceptions == DEFAULT_FAILURE_EXCEPTIONS
    assert FailureKind.POOL_TIMEOUT not in p.failure_exceptions
    assert p.mode is Mode.ENFORCE
    assert p.failure_rate_threshold is None and p.slow_call_duration is None


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        BreakerPolicy().failure_threshold = 3  # type: ignore[misc]


def test_collections_are_normalised_to_frozensets() -> None:
    p = BreakerPolicy(failure_status_codes=[500, 502], failure_exceptions=["connect", ValueError])  # type: ignore[arg-type]
    assert p.failure_status_codes == frozenset({500, 502})
    assert p.failure_exceptions == frozenset({FailureKind.CONNECT, ValueError})
    assert BreakerPolicy(mode="observe").mode is Mode.OBSERVE  # type: ignore[arg-type]


BAD_VALUES = [
    ("failure_threshold", 0, ValueError, "failure_threshold must be between 1"),
    ("failure_threshold", -3, ValueError, "-3"),
    (
        "failure_threshold",
        2.5,
        TypeError,
        "failure_threshold must be an int >= 1 or None, got 2.5 (float)",
    ),
    ("failure_threshold", True, TypeError, "got True (bool)"),
    ("failure_threshold", "5", TypeError, "got '5' (str)"),
    ("recovery_timeout", 0, ValueError, "recovery_timeout must be a finite number of seconds > 0"),
    ("recovery_timeout", -1.0, ValueError, "got -1.0"),
    ("recovery_timeout", math.nan, ValueError, "got nan"),
    ("recovery_timeout", math.inf, ValueError, "got inf"),
    ("recovery_timeout", 1e12, ValueError, "at most"),
    (
        "recovery_timeout",
        None,
        TypeError,
        "recovery_timeout must be a number of seconds > 0, got None",
    ),
    ("half_open_max_calls", 0, ValueError, "half_open_max_calls"),
    ("success_threshold", 0, ValueError, "success_threshold"),
    ("probe_timeout", 0.0, ValueError, "probe_timeout"),
    ("failure_status_codes", 503, TypeError, "failure_status_codes must be a collection"),
    ("failure_status_codes", "5xx", TypeError, "got '5xx' (str)"),
    ("failure_status_codes", [600], ValueError, "holds 600, not an HTTP status"),
    ("failure_status_codes", [503.0], TypeError, "got 503.0 (float)"),
    ("failure_exceptions", ValueError, TypeError, "failure_exceptions must be a collection"),
    ("failure_exceptions", ["conect"], ValueError, "holds 'conect', not a FailureKind"),
    ("failure_exceptions", [42], TypeError, "got 42 (int)"),
    ("classify", "yes", TypeError, "classify must be a callable"),
    ("failure_rate_threshold", 0.0, ValueError, "failure_rate_threshold must be in (0, 1]"),
    ("failure_rate_threshold", 1.5, ValueError, "got 1.5"),
    ("failure_rate_threshold", math.nan, ValueError, "got nan"),
    ("minimum_calls", 0, ValueError, "minimum_calls"),
    ("window_size", 0, ValueError, "window_size"),
    ("window_duration", -5, ValueError, "window_duration"),
    ("slow_call_duration", 0, ValueError, "slow_call_duration"),
    ("slow_call_rate_threshold", 0, ValueError, "slow_call_rate_threshold"),
    (
        "recovery_backoff",
        0.5,
        ValueError,
        "recovery_backoff must be a multiplier between 1 and 100, got 0.5",
    ),
    ("recovery_backoff", math.inf, ValueError, "got inf"),
    ("recovery_backoff", "2", TypeError, "recovery_backoff"),
    ("recovery_jitter", 1.5, ValueError, "recovery_jitter must be in [0, 1], got 1.5"),
    ("recovery_jitter", -0.1, ValueError, "recovery_jitter"),
    ("respect_retry_after", 1, TypeError, "respect_retry_after must be a bool, got 1 (int)"),
    (
        "mode",
        "shadow",
        ValueError,
        "BreakerPolicy.mode must be one of 'enforce', 'observe', 'disabled', got 'shadow'",
    ),
    ("mode", 3, TypeError, "BreakerPolicy.mode"),
]


@pytest.mark.parametrize(("field", "value", "error", "message"), BAD_VALUES)
def test_bad_values_name_the_field_and_the_value(
    field: str, value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        BreakerPolicy(**{field: value})  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert field in str(caught.value)


def test_cross_field_rules() -> None:
    with pytest.raises(ValueError, match=r"minimum_calls \(20\) may not exceed window_size \(10\)"):
        BreakerPolicy(minimum_calls=20, window_size=10)
    BreakerPolicy(
        minimum_calls=20, window_size=10, window_duration=60.0
    )  # a time window has no size
    with pytest.raises(
        ValueError, match=r"max_recovery_timeout \(5\) must be at least recovery_timeout \(10\)"
    ):
        BreakerPolicy(recovery_timeout=10, max_recovery_timeout=5)
    with pytest.raises(ValueError, match="no trip rule"):
        BreakerPolicy(failure_threshold=None)
    BreakerPolicy(failure_threshold=None, failure_rate_threshold=0.5)
    BreakerPolicy(failure_threshold=None, slow_call_duration=2.0)


@pytest.mark.parametrize("cls", [AsyncCircuitBreakerTransport, CircuitBreakerTransport])
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"policy": {"failure_threshold": 3}}, TypeError, "policy must be a BreakerPolicy or None"),
        ({"max_circuits": 0}, ValueError, "max_circuits must be >= 1, got 0"),
        ({"max_circuits": "many"}, TypeError, "max_circuits must be an int >= 1, got 'many' (str)"),
        ({"max_circuits": True}, TypeError, "max_circuits"),
        ({"key": "host"}, TypeError, "key must be a callable or None, got 'host'"),
        ({"fallback": 503}, TypeError, "fallback must be a callable or None, got 503"),
        ({"clock": 12.0}, TypeError, "clock must be a callable or None"),
        ({"on_state_change": "log"}, TypeError, "on_state_change must be a callable"),
        ({"rng": 42}, TypeError, "rng must be a random.Random or None, got 42"),
        ({"listeners": [print]}, TypeError, "listeners must hold BreakerListener instances"),
        ({"per_host": ["api.example.com"]}, TypeError, "per_host must be a mapping"),
        (
            {"per_host": {"api.example.com": 3}},
            TypeError,
            "per_host['api.example.com'] must be a BreakerPolicy, got 3",
        ),
        ({"per_host": {"*": BreakerPolicy()}}, ValueError, "per_host pattern '*' is malformed"),
    ],
)
def test_transport_arguments_are_validated(
    cls: type, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    inner = httpx.MockTransport(lambda r: httpx.Response(200))
    with pytest.raises(error) as caught:
        cls(inner, **kwargs)
    assert message in str(caught.value)


def test_transport_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        AsyncCircuitBreakerTransport(None, BreakerPolicy())  # type: ignore[misc]
