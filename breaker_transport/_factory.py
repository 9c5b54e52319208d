"""Building a breaker transport and a client from the settings ``transport=`` would hide.

Two httpx behaviours make a custom transport leak (see the README, "Client settings a custom
transport hides"):

- with ``transport=``, the client ignores its own ``verify``, ``cert``, ``http1``, ``http2``,
  ``limits`` and the environment's proxies: those configure only a transport the client builds;
- ``proxy=`` and the environment's proxies become *mounts*, and every mount (yours too) routes its
  URLs past ``transport=``, so past the breaker.

So ``over_http(**options)`` builds the library's HTTP transport from those options and wraps it,
and the client factories here build the client with every mount (environment proxies included)
wrapped by a twin of the breaker that shares its circuits. Nothing patches the client.
Library-independent: each flavour passes its own client class.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._transport import BreakerCore

if TYPE_CHECKING:
    import random
    import ssl
    from collections.abc import Callable, Iterable
    from typing import Generic

    from typing_extensions import TypedDict

    from ._events import BreakerListener
    from ._policy import BreakerPolicy
    from ._transport import Clock, Fallback, KeyFunction
    from ._types import StateChange
    from .storage._base import Storage

    LimitsT = TypeVar("LimitsT")
    ProxyT = TypeVar("ProxyT")

    class BreakerOptions(TypedDict, total=False):
        """The keyword options of a breaker transport's constructor."""

        policy: BreakerPolicy | None
        per_host: Mapping[str, BreakerPolicy] | None
        key: KeyFunction | None
        on_state_change: Callable[[StateChange], object] | None
        fallback: Fallback | None
        clock: Clock | None
        max_circuits: int
        rng: random.Random | None
        listeners: Iterable[BreakerListener]
        storage: Storage | None

    class HTTPBreakerOptions(BreakerOptions, Generic[LimitsT, ProxyT], total=False):
        """The breaker's options and the library's ``(Async)HTTPTransport`` options."""

        verify: ssl.SSLContext | str | bool
        cert: str | tuple[str, str] | tuple[str, str, str | None] | None
        trust_env: bool
        http1: bool
        http2: bool
        limits: LimitsT
        proxy: ProxyT | None
        uds: str | None
        local_address: str | None
        retries: int
        socket_options: Iterable[tuple[Any, ...]] | None


ClientT = TypeVar("ClientT")

#: Client options that configure only a transport the client builds itself: with ``transport=``
#: httpx ignores them without a word, so the factories refuse them and point to ``over_http``.
HIDDEN_CLIENT_OPTIONS = frozenset({"verify", "cert", "http1", "http2", "limits", "proxy"})


def build_client(
    client_class: Callable[..., ClientT],
    breaker_class: type[BreakerCore[Any]],
    breaker: BreakerCore[Any],
    mounts: Mapping[str, Any] | None,
    trust_env: bool,
    options: Mapping[str, Any],
) -> ClientT:
    """``client_class(transport=breaker, mounts=<every mount wrapped>, ...)``."""
    if not isinstance(breaker, breaker_class):
        raise TypeError(
            f"breaker must be a breaker transport of the kind {client_class.__qualname__} "
            f"takes: an {breaker_class._library} {breaker_class.__qualname__} (build one with "
            f"{breaker_class.__qualname__}.over_http(...)), got {breaker!r} "
            f"({type(breaker).__name__})"
        )
    for name in ("transport", *sorted(HIDDEN_CLIENT_OPTIONS)):
        if name in options:
            where = (
                "the breaker is the transport"
                if name == "transport"
                else f"{name}= configures the HTTP transport, and a client given transport= "
                f"ignores it: pass it to {type(breaker).__name__}.over_http({name}=...)"
            )
            raise TypeError(f"{name}= is not a client option here: {where}")
    routed: dict[str, Any] = {}
    if trust_env:
        routed.update(_environment_proxy_mounts(breaker))
    for pattern, transport in (mounts or {}).items():
        # None routes to the client's transport (the breaker); a breaker transport is kept as is.
        routed[pattern] = (
            transport
            if transport is None or isinstance(transport, BreakerCore)
            else breaker.wrap(transport)
        )
    return client_class(transport=breaker, mounts=routed, trust_env=trust_env, **options)


def _environment_proxy_mounts(breaker: BreakerCore[Any]) -> dict[str, Any]:
    """The mounts a client would build from HTTP(S)_PROXY/ALL_PROXY/NO_PROXY, each wrapped.

    As httpx does, and only where httpx would: when the breaker's inner transport is one the
    client could have built (``over_http``) without an explicit ``proxy``. A transport of your
    own gets no environment proxies, exactly as ``Client(transport=...)`` gets none.
    """
    options = breaker.http_options
    if options is None or options.get("proxy") is not None:
        return {}
    http_transport = type(breaker)._http_transport
    return {
        pattern: None if url is None else breaker.wrap(http_transport(**{**options, "proxy": url}))
        for pattern, url in environment_proxies().items()
    }


def environment_proxies() -> dict[str, str | None]:
    """URL pattern -> proxy URL (None: no proxy), by the rules httpx applies to the environment."""
    found = urllib.request.getproxies()
    patterns: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        url = found.get(scheme)
        if url:
            patterns[f"{scheme}://"] = url if "://" in url else f"http://{url}"
    for host in (each.strip() for each in found.get("no", "").split(",")):
        if host == "*":
            return {}  # NO_PROXY=* turns every proxy off
        if not host:
            continue
        if "://" in host:
            patterns[host] = None
        elif _is_ip(host, ipaddress.IPv4Address):
            patterns[f"all://{host}"] = None
        elif _is_ip(host, ipaddress.IPv6Address):
            patterns[f"all://[{host}]"] = None
        elif host.lower() == "localhost":
            patterns[f"all://{host}"] = None
        else:
            patterns[f"all://*{host}"] = None  # "example.com" also covers "www.example.com"
    return patterns


def _is_ip(host: str, kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    try:
        kind(host.split("/")[0])
    except ValueError:
        return False
    return True
