"""Circuit keys (a request's origin) and the ``per_host`` patterns that pick a circuit's policy.

A key is ``scheme://host[:port]``: the punycode host, lower-cased, trailing dot stripped, IP
addresses canonical (IPv6 in brackets), the scheme's default port omitted, userinfo never included.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ._policy import BreakerPolicy

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\Z")


def _idna(host: str) -> str:
    """Punycode a unicode host the way httpx does (IDNA 2008 through the ``idna`` package)."""
    try:
        import idna  # a dependency of httpx and httpx2

        return str(idna.encode(host, uts46=True).decode("ascii"))
    except ImportError:  # pragma: no cover - idna always comes with httpx
        return host.encode("idna").decode("ascii")


def canonical_host(host: str) -> str:
    """Lower-case, strip a trailing dot, canonicalise IP literals (IPv6 bracketed)."""
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.endswith("."):
        host = host[:-1]
    if ":" in host:
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            return f"[{host}]"
    if host[:1].isdigit():
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            return host
    return host


def make_key(scheme: str, host: str, port: int | None) -> str:
    host = canonical_host(host)
    if port is None or DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class KeyMaker:
    """The default ``key=``: a request's origin.

    httpx hands over the scheme and host already lower-cased and punycoded, and an IPv4 host
    already in its canonical dotted form, so for most hosts the key is just ``scheme://host``
    (plus a non-default port), built on every call: a memo per host would keep its parts alive
    for as long as the circuit lives, and cost more memory than the circuit itself. Hosts that
    need more work (IPv6 literals, a trailing dot) and URL types other than httpx's take the full
    route, memoised per (scheme, host, port) in a bounded cache.
    """

    __slots__ = ("_cache", "_limit")

    def __init__(self, limit: int) -> None:
        self._cache: dict[tuple[str, str, int | None], str] = {}
        self._limit = max(1024, limit)

    def __call__(self, url: Any) -> str:
        try:
            # httpx keeps the parsed, already-normalised parts here; reading them is 4x cheaper
            # than the public properties. The public route below serves any other URL type.
            ref = url._uri_reference
        except AttributeError:
            return self._memoised(url.scheme, url.raw_host.decode("ascii"), url.port)
        host = ref.host
        if host and host[-1] != "." and ":" not in host:  # canonical already (see above)
            port = ref.port
            if port is None or DEFAULT_PORTS.get(ref.scheme) == port:
                return f"{ref.scheme}://{host}"
            return f"{ref.scheme}://{host}:{port}"
        return self._memoised(ref.scheme, host, ref.port)

    def _memoised(self, scheme: str, host: str, port: int | None) -> str:
        parts = (scheme, host, port)
        key = self._cache.get(parts)
        if key is None:
            key = make_key(scheme, host, port)
            if len(self._cache) >= self._limit:
                self._cache.clear()
            self._cache[parts] = key
        return key


def host_and_port(url: Any) -> tuple[str, int | None]:
    """The canonical host and effective port (default filled in) of a request URL."""
    host = canonical_host(url.raw_host.decode("ascii"))
    port = url.port
    if port is None:
        port = DEFAULT_PORTS.get(url.scheme)
    return host, port


def parse_origin(text: str) -> tuple[str, int | None] | None:
    """The canonical host and effective port of ``scheme://host[:port]...``, or None."""
    if "://" not in text:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    host = parts.hostname
    if not host.isascii():
        try:
            host = _idna(host)
        except Exception:
            return None
    scheme = parts.scheme.lower()
    return canonical_host(host), port if port is not None else DEFAULT_PORTS.get(scheme)


def key_for(url_or_key: str) -> str:
    """Reduce a full URL to its key; a string without ``://`` is a key as it is."""
    if "://" not in url_or_key:
        if not url_or_key:  # force_open("") would otherwise create a circuit no request can use
            raise ValueError("a circuit key must be a non-empty str, got ''")
        return url_or_key
    try:
        parts = urlsplit(url_or_key)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"cannot read a circuit key from {url_or_key!r}: {exc}") from None
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"cannot read a circuit key from {url_or_key!r}: it names no host")
    if host and not host.isascii():
        host = _idna(host)
    return make_key(parts.scheme.lower(), host, port)


def _pattern_error(pattern: object, why: str) -> ValueError:
    return ValueError(f"per_host pattern {pattern!r} is malformed: {why}")


def _check_hostname(pattern: str, host: str) -> str:
    if not host:
        raise _pattern_error(pattern, "the host is empty")
    if not host.isascii():
        try:
            host = _idna(host)
        except Exception as exc:
            raise _pattern_error(pattern, f"not a valid international host name ({exc})") from None
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    if host[:1].isdigit():
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            pass
    for label in host.split("."):
        if not label:
            raise _pattern_error(
                pattern, "it has an empty label (two dots in a row, or a leading dot)"
            )
        if not _LABEL.match(label):
            raise _pattern_error(
                pattern, f"label {label!r} is not a host name label (letters, digits, '-', '_')"
            )
    return host


def _parse_port(pattern: str, text: str) -> int:
    # isascii: str.isdigit() is also true for "²" (int() refuses it) and "٣" (int() reads 3)
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise _pattern_error(pattern, f"port {text!r} is not a number from 1 to 65535")
    return int(text)


def parse_pattern(pattern: object) -> tuple[str, str, int | None]:
    """``(kind, host, port)`` with kind ``"exact"`` or ``"wildcard"``; raises on a malformed one."""
    if not isinstance(pattern, str):
        raise TypeError(
            f"per_host keys must be str patterns ('host', 'host:port' or '*.suffix'), got "
            f"{pattern!r} ({type(pattern).__name__})"
        )
    if not pattern or pattern != pattern.strip() or any(c.isspace() for c in pattern):
        raise _pattern_error(pattern, "it is empty or contains white space")
    if "://" in pattern or "/" in pattern or "?" in pattern or "#" in pattern or "@" in pattern:
        raise _pattern_error(pattern, "give a host, 'host:port' or '*.suffix', not a URL")
    if pattern.startswith("*."):
        suffix = pattern[2:]
        if "*" in suffix:
            raise _pattern_error(
                pattern, "'*' may only stand alone as the first label, as '*.suffix'"
            )
        if ":" in suffix:
            raise _pattern_error(pattern, "a wildcard pattern cannot name a port")
        return "wildcard", _check_hostname(pattern, suffix), None
    if "*" in pattern:
        raise _pattern_error(pattern, "'*' may only stand alone as the first label, as '*.suffix'")
    if pattern.startswith("["):
        end = pattern.find("]")
        if end < 0:
            raise _pattern_error(pattern, "an IPv6 address is missing its ']'")
        address, rest = pattern[1:end], pattern[end + 1 :]
        try:
            host = f"[{ipaddress.IPv6Address(address).compressed}]"
        except ValueError:
            raise _pattern_error(pattern, f"{address!r} is not an IPv6 address") from None
        if not rest:
            return "exact", host, None
        if not rest.startswith(":"):
            raise _pattern_error(pattern, "expected ':port' after the IPv6 address")
        return "exact", host, _parse_port(pattern, rest[1:])
    if pattern.count(":") > 1:
        try:
            return "exact", f"[{ipaddress.IPv6Address(pattern).compressed}]", None
        except ValueError:
            raise _pattern_error(
                pattern, "too many ':' (write an IPv6 address as '[addr]:port')"
            ) from None
    host, sep, port_text = pattern.partition(":")
    port = _parse_port(pattern, port_text) if sep else None
    return "exact", _check_hostname(pattern, host), port


class PolicyResolver:
    """Picks a circuit's policy: host:port, then host, then the longest wildcard, else default."""

    __slots__ = ("default", "exact", "host_port", "wildcards")

    def __init__(
        self, default: BreakerPolicy, per_host: Mapping[str, BreakerPolicy] | None
    ) -> None:
        self.default = default
        self.exact: dict[str, BreakerPolicy] = {}
        self.host_port: dict[tuple[str, int], BreakerPolicy] = {}
        self.wildcards: dict[str, BreakerPolicy] = {}
        if per_host is None:
            return
        if not isinstance(per_host, Mapping):
            raise TypeError(
                "per_host must be a mapping of host pattern -> BreakerPolicy, got "
                f"{per_host!r} ({type(per_host).__name__})"
            )
        seen: dict[tuple[str, str, int | None], tuple[str, BreakerPolicy]] = {}
        for pattern, policy in per_host.items():
            parsed = parse_pattern(pattern)
            if not isinstance(policy, BreakerPolicy):
                raise TypeError(
                    f"per_host[{pattern!r}] must be a BreakerPolicy, got "
                    f"{policy!r} ({type(policy).__name__})"
                )
            if parsed in seen:
                other, previous = seen[parsed]
                if previous != policy or previous.classify is not policy.classify:
                    raise ValueError(
                        f"per_host patterns {other!r} and {pattern!r} name the same hosts "
                        "with different policies"
                    )
                continue
            seen[parsed] = (pattern, policy)
            kind, host, port = parsed
            if kind == "wildcard":
                self.wildcards[host] = policy
            elif port is None:
                self.exact[host] = policy
            else:
                self.host_port[(host, port)] = policy

    def resolve(self, host: str, port: int | None) -> BreakerPolicy:
        if port is not None and self.host_port:
            found = self.host_port.get((host, port))
            if found is not None:
                return found
        found = self.exact.get(host)
        if found is not None:
            return found
        if self.wildcards:
            # "a.b.example.com" tries "b.example.com", "example.com", "com": longest first.
            dot = host.find(".")
            while dot >= 0:
                found = self.wildcards.get(host[dot + 1 :])
                if found is not None:
                    return found
                dot = host.find(".", dot + 1)
        return self.default
