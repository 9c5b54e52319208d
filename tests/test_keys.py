"""Circuit keys (normalised origins) and per_host patterns."""

from __future__ import annotations

import httpx
import pytest

from breaker_transport import BreakerPolicy
from breaker_transport._keys import KeyMaker, PolicyResolver, key_for, parse_pattern


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://Example.COM/", "https://example.com"),
        ("https://example.com:443/", "https://example.com"),
        ("http://example.com:443/", "http://example.com:443"),
        ("HTTPS://EXAMPLE.COM:0443/x", "https://example.com"),
        ("https://münchen.de/", "https://xn--mnchen-3ya.de"),
        ("https://xn--mnchen-3ya.de/", "https://xn--mnchen-3ya.de"),
        ("https://straße.de/", "https://xn--strae-oqa.de"),
        ("https://EXAMPLE.com./", "https://example.com"),
        ("http://[2001:DB8::1]/", "http://[2001:db8::1]"),
        ("http://[2001:db8:0:0:0:0:0:1]:8080/", "http://[2001:db8::1]:8080"),
        ("http://127.0.0.1:8000/a?b", "http://127.0.0.1:8000"),
        ("https://user:secret@api.example.com/", "https://api.example.com"),
        ("wss://stream.example:443/", "wss://stream.example"),
        ("ws://stream.example:80/", "ws://stream.example"),
    ],
)
def test_request_keys_are_normalised_origins(url: str, key: str) -> None:
    assert KeyMaker(10)(httpx.URL(url)) == key
    assert key_for(url) == key  # the same key from a plain string (operator API)


def test_a_string_without_scheme_is_a_key_as_it_is() -> None:
    assert key_for("payments") == "payments"
    assert key_for("Tenant:A") == "Tenant:A"


def test_key_maker_cache_is_bounded() -> None:
    maker = KeyMaker(10)
    for n in range(5000):
        maker(httpx.URL(f"https://h{n}.example/"))
    assert len(maker._cache) <= 1024


@pytest.mark.parametrize(
    ("pattern", "parsed"),
    [
        ("api.example.com", ("exact", "api.example.com", None)),
        ("API.Example.com.", ("exact", "api.example.com", None)),
        ("api.example.com:8443", ("exact", "api.example.com", 8443)),
        ("*.internal.example", ("wildcard", "internal.example", None)),
        ("münchen.de", ("exact", "xn--mnchen-3ya.de", None)),
        ("*.münchen.de", ("wildcard", "xn--mnchen-3ya.de", None)),
        ("10.0.0.1:80", ("exact", "10.0.0.1", 80)),
        ("[2001:DB8::1]:8080", ("exact", "[2001:db8::1]", 8080)),
        ("[::1]", ("exact", "[::1]", None)),
        ("::1", ("exact", "[::1]", None)),
        ("my_service", ("exact", "my_service", None)),
    ],
)
def test_valid_patterns(pattern: str, parsed: tuple[str, str, int | None]) -> None:
    assert parse_pattern(pattern) == parsed


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("*", "'*' may only stand alone"),
        ("**.a", "'*' may only stand alone"),
        ("*.*.a", "'*' may only stand alone"),
        ("a.*.b", "'*' may only stand alone"),
        ("a..b", "empty label"),
        (".a", "empty label"),
        ("a b", "white space"),
        (" api.example.com", "white space"),
        ("", "empty"),
        ("https://api.example.com", "not a URL"),
        ("api.example.com/v1", "not a URL"),
        ("api.example.com:0", "port '0'"),
        ("api.example.com:99999", "port '99999'"),
        ("api.example.com:http", "port 'http'"),
        ("*.example.com:443", "cannot name a port"),
        ("[::1", "missing its ']'"),
        ("[nope]:1", "not an IPv6 address"),
        ("a:b:c", "too many ':'"),
        ("bad!host", "not a host name label"),
    ],
)
def test_malformed_patterns_are_errors(pattern: str, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_pattern(pattern)
    assert why in str(caught.value)
    assert repr(pattern) in str(caught.value)


def test_non_string_pattern_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="per_host keys must be str patterns"):
        parse_pattern(443)


def test_conflicting_duplicates_are_errors_and_agreeing_ones_are_fine() -> None:
    a, b = BreakerPolicy(failure_threshold=2), BreakerPolicy(failure_threshold=3)
    with pytest.raises(
        ValueError, match=r"'API\.example\.com' and 'api\.example\.com' name the same hosts"
    ):
        PolicyResolver(BreakerPolicy(), {"API.example.com": a, "api.example.com": b})
    resolver = PolicyResolver(BreakerPolicy(), {"API.example.com": a, "api.example.com.": a})
    assert resolver.resolve("api.example.com", 443) is a


def test_precedence() -> None:
    default = BreakerPolicy()
    exact, host_port, wide, narrow = (BreakerPolicy(failure_threshold=n) for n in (1, 2, 3, 4))
    resolver = PolicyResolver(
        default,
        {
            "a.example.com": exact,
            "a.example.com:8443": host_port,
            "*.example.com": wide,
            "*.b.example.com": narrow,
        },
    )
    assert resolver.resolve("a.example.com", 8443) is host_port
    assert resolver.resolve("a.example.com", 443) is exact
    assert resolver.resolve("x.b.example.com", 443) is narrow
    assert resolver.resolve("b.example.com", 443) is wide
    assert resolver.resolve("x.y.example.com", 443) is wide
    assert resolver.resolve("example.com", 443) is default
