"""Bad input: every policy field and transport argument with wrong types and hostile numbers,
malformed and conflicting per_host patterns, broken key= callables, hostile Retry-After headers,
bad per-request options. Each gets a clear error at construction naming the field and the value,
or a documented, logged fallback at request time: never a crash inside a request, never a
wedged circuit (after each bad request the circuit still opens, rejects and recovers).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from breaker_transport import (
    AsyncCircuitBreakerTransport,
    BreakerListener,
    BreakerPolicy,
    CircuitBreakerTransport,
    CircuitOpenError,
    CircuitState,
    Outcome,
)
from breaker_transport.testing import ManualClock

from .helpers import fixed

URL = "https://api.example.com/x"
KEY = "https://api.example.com"

# -- BreakerPolicy: every field, every kind of bad value -------------------------------------------

WRONG_TYPES: list[object] = ["5", b"5", [1], {}, object(), 1 + 2j, True, False]
HOSTILE_NUMBERS: list[object] = [
    -1,
    0,
    0.0,
    -0.0,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    10**100,
    10**400,
]

COUNTS = ["failure_threshold", "half_open_max_calls", "success_threshold", "minimum_calls"]
SECONDS = ["recovery_timeout", "probe_timeout", "window_duration", "slow_call_duration"]
SECONDS += ["max_recovery_timeout"]
FRACTIONS = ["failure_rate_threshold", "slow_call_rate_threshold", "recovery_jitter"]
OPTIONAL = {
    "failure_threshold",
    "window_duration",
    "slow_call_duration",
    "max_recovery_timeout",
    "failure_rate_threshold",
}

#: (field, value) pairs that must be refused, by kind of field
MUST_FAIL: list[tuple[str, object]] = []
for name in [*COUNTS, "window_size"]:
    MUST_FAIL += [(name, v) for v in [*WRONG_TYPES, 2.0, math.nan, math.inf, -1, 0, 10**100]]
    if name not in OPTIONAL:
        MUST_FAIL.append((name, None))
for name in SECONDS:
    MUST_FAIL += [(name, v) for v in [*WRONG_TYPES, *HOSTILE_NUMBERS]]
    if name not in OPTIONAL:
        MUST_FAIL.append((name, None))
for name in FRACTIONS:
    hostile = [-1, 1.5, 2, math.nan, math.inf, -math.inf, 10**100, 10**400, -0.1]
    MUST_FAIL += [(name, v) for v in [*WRONG_TYPES, *hostile]]
    if name != "recovery_jitter":
        MUST_FAIL.append((name, 0))  # (0, 1]: zero is no threshold
MUST_FAIL += [("slow_call_rate_threshold", None), ("recovery_jitter", None)]
MUST_FAIL += [
    ("recovery_backoff", v) for v in [*WRONG_TYPES, None, 0, 0.5, -2, 101, math.nan, math.inf]
]
MUST_FAIL += [("recovery_backoff", 10**400)]
MUST_FAIL += [("respect_retry_after", v) for v in [1, 0, "yes", None, "true"]]
MUST_FAIL += [("mode", v) for v in ["shadow", "ENFORCE", "", None, 1, b"observe"]]
MUST_FAIL += [("classify", v) for v in ["yes", 1, [print]]]
MUST_FAIL += [
    ("failure_status_codes", v)
    for v in [503, "5xx", b"5", None, [600], [99], [-1], [503.0], [True], [math.nan], [10**400]]
]
MUST_FAIL += [
    ("failure_exceptions", v)
    for v in [ValueError, "connect", None, 3, ["conect"], [42], [int], [object()], [None]]
]


def _mentions(message: str, value: object) -> bool:
    text = repr(value)
    return text in message or (len(text) > 40 and text[:40] in message)


@pytest.mark.parametrize(("field", "value"), MUST_FAIL, ids=lambda x: repr(x)[:30])
def test_every_bad_policy_value_is_refused_naming_the_field_and_the_value(
    field: str, value: object
) -> None:
    with pytest.raises((TypeError, ValueError)) as caught:
        BreakerPolicy(**{field: value})
    message = str(caught.value)
    assert field in message
    if field not in ("failure_status_codes", "failure_exceptions"):
        assert _mentions(message, value), message
    else:  # a collection: the message names the bad member, or the collection itself
        members = value if isinstance(value, list) else [value]
        assert any(_mentions(message, m) for m in [value, *members]), message


def test_cross_field_conflicts_name_both_fields() -> None:
    with pytest.raises(ValueError, match=r"minimum_calls \(101\) may not exceed window_size"):
        BreakerPolicy(minimum_calls=101)  # window_size is 100
    with pytest.raises(ValueError, match=r"minimum_calls \(10\) may not exceed window_size \(9\)"):
        BreakerPolicy(window_size=9)
    with pytest.raises(ValueError, match=r"max_recovery_timeout \(59\) must be at least"):
        BreakerPolicy(max_recovery_timeout=59)
    with pytest.raises(ValueError, match="no trip rule"):
        BreakerPolicy(failure_threshold=None)


ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.binary(max_size=3),
    st.lists(st.integers(-1000, 1000), max_size=3),
    st.complex_numbers(max_magnitude=10),
)
FIELDS = [*COUNTS, "window_size", *SECONDS, *FRACTIONS, "recovery_backoff"]
FIELDS += ["respect_retry_after", "mode", "failure_status_codes", "failure_exceptions"]


@given(field=st.sampled_from(FIELDS), value=ANY_VALUE)
def test_any_value_gives_a_policy_or_a_type_or_value_error_naming_the_field(
    field: str, value: object
) -> None:
    try:
        policy = BreakerPolicy(**{field: value})
    except (TypeError, ValueError) as exc:
        message = str(exc)
    else:
        message = ""
        got = getattr(policy, field)
        assert got == value or got is value or isinstance(value, (list, str))
    assert not message or field in message


# -- transport arguments --------------------------------------------------------------------------

TRANSPORT_BAD: list[tuple[dict[str, object], str]] = [
    ({"policy": BreakerPolicy}, "policy must be a BreakerPolicy"),
    ({"policy": "strict"}, "policy must be a BreakerPolicy"),
    ({"per_host": "api.example.com"}, "per_host must be a mapping"),
    (
        {"per_host": {"api.example.com": None}},
        "per_host['api.example.com'] must be a BreakerPolicy",
    ),
    ({"per_host": {42: BreakerPolicy()}}, "per_host keys must be str patterns"),
    ({"key": "origin"}, "key must be a callable"),
    ({"on_state_change": 5}, "on_state_change must be a callable"),
    ({"fallback": "503"}, "fallback must be a callable"),
    ({"clock": "monotonic"}, "clock must be a callable"),
    ({"clock": lambda: "noon"}, "clock must return the time in seconds as a number, got 'noon'"),
    ({"clock": lambda: math.nan}, "clock must return a finite time in seconds, got nan"),
    ({"max_circuits": 0}, "max_circuits must be >= 1, got 0"),
    ({"max_circuits": -5}, "max_circuits must be >= 1, got -5"),
    ({"max_circuits": 1.0}, "max_circuits must be an int >= 1, got 1.0 (float)"),
    ({"max_circuits": math.inf}, "max_circuits must be an int >= 1, got inf (float)"),
    ({"max_circuits": None}, "max_circuits must be an int >= 1, got None"),
    ({"max_circuits": False}, "max_circuits must be an int >= 1, got False"),
    ({"rng": 42}, "rng must be a random.Random or None, got 42"),
    ({"rng": random}, "rng must be a random.Random or None"),
    ({"listeners": None}, "listeners must be a sequence of BreakerListener, got None"),
    ({"listeners": "log"}, "listeners must be a sequence of BreakerListener, got 'log'"),
    ({"listeners": [BreakerListener]}, "listeners must hold BreakerListener instances"),
]


@pytest.mark.parametrize("cls", [AsyncCircuitBreakerTransport, CircuitBreakerTransport])
@pytest.mark.parametrize(("kwargs", "message"), TRANSPORT_BAD, ids=lambda x: repr(x)[:40])
def test_every_bad_transport_argument_is_refused_with_a_clear_error(
    cls: type, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises((TypeError, ValueError)) as caught:
        cls(fixed(200), **kwargs)
    assert message in str(caught.value)


@pytest.mark.parametrize("inner", [object(), "http://api", 5, print])
def test_an_inner_transport_of_the_wrong_kind_is_refused(inner: object) -> None:
    with pytest.raises(TypeError, match=r"transport must be an httpx\.AsyncBaseTransport"):
        AsyncCircuitBreakerTransport(inner)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"transport must be an httpx\.BaseTransport"):
        CircuitBreakerTransport(httpx.AsyncHTTPTransport())  # type: ignore[arg-type]


def test_huge_max_circuits_is_fine() -> None:
    CircuitBreakerTransport(fixed(200), max_circuits=10**100)


# -- per_host patterns ----------------------------------------------------------------------------

MALFORMED = [
    "*",
    "**.a",
    "*.*.a",
    "a.*",
    "*.",
    "*..a",
    "a..b",
    ".a",
    "a b",
    " api.example.com",
    "api.example.com ",
    "api\texample.com",
    "",
    "https://api.example.com",
    "api.example.com/v1",
    "api.example.com?x",
    "api.example.com#x",
    "user@api.example.com",
    "api.example.com:",
    ":80",
    "api.example.com:0",
    "api.example.com:65536",
    "api.example.com:-1",
    "api.example.com:+80",
    "api.example.com:http",
    "*.example.com:443",
    "[::1",
    "[::1]:",
    "[::1]x",
    "[nope]",
    "a:b:c",
    "bad!host",
    "-a.example",
    "a-.example",
    "a" * 64 + ".example",
    "\u2603.net",  # a snowman is not a host name (IDNA 2008)
    "xn--.example",
]


@pytest.mark.parametrize("pattern", MALFORMED, ids=repr)
def test_malformed_per_host_patterns_are_errors_naming_the_pattern(pattern: str) -> None:
    with pytest.raises(ValueError) as caught:
        CircuitBreakerTransport(fixed(200), per_host={pattern: BreakerPolicy()})
    assert repr(pattern) in str(caught.value)
    assert "malformed" in str(caught.value)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("API.example.com", "api.example.com"),
        ("api.example.com.", "api.example.com"),
        ("m\u00fcnchen.de", "xn--mnchen-3ya.de"),
        ("M\u00dcNCHEN.de", "m\u00fcnchen.de"),
        ("[::1]", "::1"),
        ("[2001:db8::1]:80", "[2001:DB8:0::1]:80"),
        ("api.example.com:443", "api.example.com:0443"),
        ("*.Example.com", "*.example.com."),
    ],
)
def test_two_spellings_of_one_pattern_with_different_policies_conflict(a: str, b: str) -> None:
    one, two = BreakerPolicy(failure_threshold=1), BreakerPolicy(failure_threshold=2)
    with pytest.raises(ValueError, match="name the same hosts with different policies") as caught:
        CircuitBreakerTransport(fixed(200), per_host={a: one, b: two})
    assert repr(a) in str(caught.value) and repr(b) in str(caught.value)
    CircuitBreakerTransport(fixed(200), per_host={a: one, b: one})  # agreeing: fine


def test_non_ascii_hosts_match_their_per_host_policy_either_way() -> None:
    strict = BreakerPolicy(failure_threshold=1)
    transport = CircuitBreakerTransport(
        fixed(503), per_host={"m\u00fcnchen.de": strict, "*.xn--strae-oqa.de": strict}
    )
    with httpx.Client(transport=transport) as client:
        for url in ("https://M\u00dcNCHEN.de/", "https://api.stra\u00dfe.de/", "https://other.de/"):
            assert client.get(url).status_code == 503
    assert transport.state("https://xn--mnchen-3ya.de") is CircuitState.OPEN
    assert transport.state("https://api.xn--strae-oqa.de") is CircuitState.OPEN
    assert transport.state("https://other.de") is CircuitState.CLOSED  # default: 5 failures


# -- key= callables that break: logged, the request's origin is used -------------------------------


class Weird(str):
    pass


@pytest.mark.parametrize(
    "key",
    [
        lambda request: 1 / 0,
        lambda request: request.missing_attribute,
        lambda request: None,
        lambda request: 42,
        lambda request: b"tenant",
        lambda request: "",
        lambda request: ["tenant"],
        lambda request: Weird("tenant"),
    ],
    ids=["raises", "attribute-error", "none", "int", "bytes", "empty", "list", "str-subclass"],
)
def test_a_broken_key_callable_falls_back_to_the_origin_and_is_logged(
    key: Callable[[httpx.Request], Any], caplog: pytest.LogCaptureFixture, clock: ManualClock
) -> None:
    policy = BreakerPolicy(failure_threshold=2, recovery_timeout=5.0)
    statuses = iter([503, 503, 200])
    inner = httpx.MockTransport(lambda request: httpx.Response(next(statuses)))
    transport = CircuitBreakerTransport(inner, policy=policy, key=key, clock=clock)
    with (
        caplog.at_level(logging.DEBUG, "breaker_transport"),
        httpx.Client(transport=transport) as client,
    ):
        assert [client.get(URL).status_code for _ in range(2)] == [503, 503]
        with pytest.raises(CircuitOpenError) as caught:
            client.get(URL)
        assert caught.value.key == KEY
        clock.advance(5.0)
        assert client.get(URL).status_code == 200  # the probe: not wedged
    assert transport.state(URL) is CircuitState.CLOSED
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "key=" in r.getMessage()]
    assert len(errors) == 1  # once at ERROR, then at DEBUG: a broken key= must not flood logs
    assert "using the request's origin" in errors[0].getMessage()


class Interrupt(BaseException):
    pass


def test_a_key_callable_raising_a_base_exception_is_not_swallowed() -> None:
    def key(request: httpx.Request) -> str:
        raise Interrupt

    transport = CircuitBreakerTransport(fixed(200), key=key)
    with httpx.Client(transport=transport) as client, pytest.raises(Interrupt):
        client.get(URL)
    assert transport.stats() == {}  # raised before admission: nothing counted, nothing in flight


# -- Retry-After: enormous, negative, not a number ------------------------------------------------

RECOVERY = 10.0
CAP = 120.0


@pytest.mark.parametrize(
    ("headers", "open_for"),
    [
        ({"retry-after": "30"}, 30.0),
        ({"retry-after": "  30  "}, 30.0),
        ({"retry-after": "5"}, RECOVERY),  # shorter than recovery_timeout: never shortens
        ({"retry-after": "86400"}, CAP),  # a day: capped
        ({"retry-after": "9" * 40}, CAP),
        ({"retry-after": "9" * 10_000}, CAP),
        ({"retry-after": "1e400"}, RECOVERY),
        ({"retry-after": "-30"}, RECOVERY),
        ({"retry-after": "-0"}, RECOVERY),
        ({"retry-after": "0x1e"}, RECOVERY),
        ({"retry-after": "30.5"}, RECOVERY),
        ({"retry-after": "nan"}, RECOVERY),
        ({"retry-after": "inf"}, RECOVERY),
        ({"retry-after": ""}, RECOVERY),
        ({"retry-after": "soon"}, RECOVERY),
        ({"retry-after": "\u0663\u0660".encode()}, RECOVERY),  # Arabic-Indic digits, UTF-8
        (
            {
                "retry-after": "Wed, 21 Oct 2015 07:28:30 GMT",
                "date": "Wed, 21 Oct 2015 07:28:00 GMT",
            },
            30.0,
        ),
        (
            {
                "retry-after": "Wed, 21 Oct 2015 07:28:00 GMT",
                "date": "Wed, 21 Oct 2015 07:28:30 GMT",
            },
            RECOVERY,  # in the past
        ),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, CAP),  # the wall clock: far future
        ({"retry-after": "Sat, 01 Jan 10000 00:00:00 GMT"}, RECOVERY),  # not a date
        ({"retry-after": "Mon, 01 Jan 0001 00:00:00 GMT"}, RECOVERY),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT", "date": "garbage"}, CAP),
        ({"retry-after": "Sun, 06 Nov 1994 08:49:37 +9999"}, RECOVERY),
    ],
    ids=lambda x: repr(x)[:50],
)
@pytest.mark.parametrize("status", [503, 429])
def test_hostile_retry_after_never_crashes_and_never_locks_a_host_out(
    headers: dict[str, str], open_for: float, status: int, clock: ManualClock
) -> None:
    policy = BreakerPolicy(
        failure_threshold=1,
        recovery_timeout=RECOVERY,
        max_recovery_timeout=CAP,
        failure_status_codes={429, 503},
    )
    answers = iter([httpx.Response(status, headers=headers, content=b"busy"), httpx.Response(200)])
    transport = CircuitBreakerTransport(
        httpx.MockTransport(lambda request: next(answers)), policy=policy, clock=clock
    )
    with httpx.Client(transport=transport) as client:
        response = client.get(URL)
        assert (response.status_code, response.content) == (status, b"busy")  # unchanged
        with pytest.raises(CircuitOpenError) as caught:
            client.get(URL)
        assert caught.value.retry_after == open_for
        clock.advance(open_for)
        assert client.get(URL).status_code == 200  # the probe, right when the period ends
    stats = transport.stats()[KEY]
    assert (stats.state, stats.in_flight, stats.failures, stats.successes) == (
        CircuitState.CLOSED,
        0,
        1,
        1,
    )


# -- per-request options, fallbacks, operator calls -----------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ("bypass", TypeError, 'request.extensions["circuit_breaker"] must be a dict'),
        ({"bypass": "yes"}, TypeError, "[\"bypass\"] must be a bool, got 'yes'"),
        ({"bypass": 1}, TypeError, '["bypass"] must be a bool, got 1'),
        ({"key": 42}, TypeError, '["key"] must be a non-empty str, got 42'),
        ({"key": ""}, TypeError, '["key"] must be a non-empty str'),
        ({"skip": True}, ValueError, "unknown option(s) ['skip']"),
    ],
)
def test_bad_per_request_options_are_clear_errors_and_count_nothing(
    options: object, error: type[Exception], message: str, clock: ManualClock
) -> None:
    transport = CircuitBreakerTransport(
        fixed(503), policy=BreakerPolicy(failure_threshold=1), clock=clock
    )
    with httpx.Client(transport=transport) as client:
        with pytest.raises(error) as caught:
            client.get(URL, extensions={"circuit_breaker": options})
        assert message in str(caught.value)
        assert transport.stats() == {}
        assert client.get(URL).status_code == 503  # a good request still counts and opens
    assert transport.state(URL) is CircuitState.OPEN


def test_a_fallback_returning_junk_is_a_clear_error_counted_as_a_rejection(
    clock: ManualClock,
) -> None:
    transport = CircuitBreakerTransport(
        fixed(503),
        policy=BreakerPolicy(failure_threshold=1, recovery_timeout=5.0),
        fallback=lambda request, error: "sorry",
        clock=clock,
    )
    with httpx.Client(transport=transport) as client:
        client.get(URL)
        with pytest.raises(
            TypeError, match=r"fallback must return an httpx\.Response, got 'sorry'"
        ):
            client.get(URL)
        clock.advance(5.0)
        assert client.get(URL).status_code == 503  # the probe went out: not wedged
    stats = transport.stats()[KEY]
    assert (stats.failures, stats.rejections, stats.in_flight) == (2, 1, 0)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda t: t.state(None), TypeError, "expected a URL or a circuit key (str), got None"),
        (lambda t: t.state(42), TypeError, "got 42 (int)"),
        (lambda t: t.force_open(b"https://api"), TypeError, "got b'https://api' (bytes)"),
        (lambda t: t.reset(["a"]), TypeError, "got ['a'] (list)"),
        (lambda t: t.state("http://[::1"), ValueError, "cannot read a circuit key"),
        (lambda t: t.force_open("http://x:99999/"), ValueError, "'http://x:99999/'"),
        (lambda t: t.force_open(""), ValueError, "a circuit key must be a non-empty str"),
        (lambda t: t.set_mode("shadow"), ValueError, "set_mode(mode) must be one of"),
        (lambda t: t.set_mode(None), TypeError, "set_mode(mode) must be a Mode"),
        (lambda t: t.set_mode("observe", 7), TypeError, "got 7 (int)"),
        (lambda t: t.add_listener(print), TypeError, "expected a BreakerListener"),
    ],
)
def test_bad_operator_calls_are_clear_errors_and_change_nothing(
    call: Callable[[CircuitBreakerTransport], object], error: type[Exception], message: str
) -> None:
    transport = CircuitBreakerTransport(fixed(200))
    with pytest.raises(error) as caught:
        call(transport)
    assert message in str(caught.value)
    assert transport.stats() == {}


def test_a_classify_returning_junk_is_logged_and_the_defaults_apply(
    caplog: pytest.LogCaptureFixture, clock: ManualClock
) -> None:
    verdicts: list[object] = ["failure", 1, None, Outcome.FAILURE, object()]
    junk = iter(verdicts)
    policy = BreakerPolicy(failure_threshold=1, classify=lambda req, resp, exc: next(junk))
    transport = CircuitBreakerTransport(fixed(200), policy=policy, clock=clock)
    with (
        caplog.at_level(logging.ERROR, "breaker_transport"),
        httpx.Client(transport=transport) as client,
    ):
        for _ in range(4):
            assert client.get(URL).status_code == 200
    assert transport.state(URL) is CircuitState.OPEN  # the fourth verdict, a real Outcome
    assert sum("not an Outcome or None" in r.getMessage() for r in caplog.records) == 2
