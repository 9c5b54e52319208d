"""``RedisStorage``: circuit state shared by every worker through one Redis (or Redis Cluster).

One class for both transports: give it a ``redis.Redis`` for ``CircuitBreakerTransport`` or a
``redis.asyncio.Redis`` for ``AsyncCircuitBreakerTransport`` (a mismatch is refused at
construction of the transport). One storage serves one transport; two transports (or two
processes) share state by using the same Redis and ``prefix``.

The breaker does not talk to Redis through your client as it is: it derives a client of its own
from the client's connection settings, with ``timeout`` as its connect and socket timeout and no
retries, so a slow or dead Redis delays a call by at most about ``timeout`` (twice that when a
connection must be made first; either way much shorter than an HTTP timeout), and the breaker's
traffic never queues behind your application's. Cluster clients (``redis.cluster.RedisCluster``,
``redis.asyncio.cluster.RedisCluster``) are used as given, each async call bounded by about twice
``timeout``; set their socket timeouts yourself.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ._base import Storage
from ._rules import SCRIPT, parse_reply

if TYPE_CHECKING:
    from .._transport import BreakerCore
    from ._shared import Call, Reply, SharedCircuits

_INSTALL_HINT = 'RedisStorage needs the redis package: pip install "breaker-transport[redis]"'


def _import_redis() -> Any:
    try:
        import redis
        import redis.asyncio
    except ImportError as exc:  # pragma: no cover - the test extra installs redis
        raise ImportError(_INSTALL_HINT) from exc
    return redis


def _check_seconds(name: str, value: object, *, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"RedisStorage {name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or not 0 < value <= maximum:
        raise ValueError(
            f"RedisStorage {name} must be a finite number of seconds in (0, {maximum:g}], "
            f"got {value!r}"
        )
    return float(value)


def _under_trio() -> bool:
    try:
        import sniffio
    except ImportError:
        return False
    try:
        return bool(sniffio.current_async_library() == "trio")
    except sniffio.AsyncLibraryNotFoundError:
        return False


_TRIO_ERROR = (
    "RedisStorage with a redis.asyncio client runs on asyncio only (redis.asyncio does not "
    "support trio); under trio use the in-memory storage (storage=None)"
)


class RedisStorage(Storage):
    """Circuit state in Redis, shared by every transport that uses the same Redis and prefix.

    ``client``: a ``redis.Redis`` (sync transport) or ``redis.asyncio.Redis`` (async transport),
    or a cluster client. ``prefix``: the start of every key (``prefix:{circuit key}``, where the
    braces are the circuit's Cluster hash tag). ``timeout``: the breaker's own Redis timeout in
    seconds. ``idle_ttl``: a closed circuit's state expires this long after its last settlement
    (an open one this long after its deadline; a forced-open one never). ``sync_interval``: how
    long a worker trusts its mirror of an open circuit (and the run-time default mode) before
    asking Redis again. ``retry_interval``: how often a worker tries Redis again while it is away.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "breaker",
        timeout: float = 0.25,
        idle_ttl: float = 3600.0,
        sync_interval: float = 1.0,
        retry_interval: float = 1.0,
    ) -> None:
        redis = _import_redis()
        from redis.asyncio.cluster import RedisCluster as AsyncCluster
        from redis.cluster import RedisCluster

        if isinstance(client, (redis.asyncio.Redis, AsyncCluster)):
            self.asynchronous = True
            if _under_trio():
                raise RuntimeError(_TRIO_ERROR)
        elif isinstance(client, (redis.Redis, RedisCluster)):
            self.asynchronous = False
        else:
            raise TypeError(
                "RedisStorage needs a redis.Redis (for CircuitBreakerTransport) or a "
                "redis.asyncio.Redis (for AsyncCircuitBreakerTransport), got "
                f"{client!r} ({type(client).__name__})"
            )
        if not isinstance(prefix, str) or not prefix:
            raise TypeError(f"RedisStorage prefix must be a non-empty str, got {prefix!r}")
        if "{" in prefix or "}" in prefix:
            raise ValueError(
                f"RedisStorage prefix may not contain '{{' or '}}' (the braces around each "
                f"circuit key are its Cluster hash tag), got {prefix!r}"
            )
        self.client = client
        self.prefix = prefix
        self.timeout = _check_seconds("timeout", timeout, maximum=60.0)
        self.idle_ttl = _check_seconds("idle_ttl", idle_ttl, maximum=30 * 24 * 3600.0)
        self.sync_interval = _check_seconds("sync_interval", sync_interval, maximum=3600.0)
        self.retry_interval = _check_seconds("retry_interval", retry_interval, maximum=3600.0)
        self._attached = False

    def __repr__(self) -> str:
        kind = "redis.asyncio" if self.asynchronous else "redis"
        return f"RedisStorage({kind}, prefix={self.prefix!r}, timeout={self.timeout:g})"

    def attach(self, core: BreakerCore[Any], *, asynchronous: bool) -> SharedCircuits:
        from ._shared import AsyncSharedCircuits, SyncSharedCircuits

        if asynchronous != self.asynchronous:
            if asynchronous:
                raise TypeError(
                    "AsyncCircuitBreakerTransport needs RedisStorage(redis.asyncio.Redis(...)); "
                    "this one holds a sync redis.Redis client, which would block the event loop"
                )
            raise TypeError(
                "CircuitBreakerTransport needs RedisStorage(redis.Redis(...)); this one holds "
                "a redis.asyncio client, which sync code cannot use"
            )
        if self._attached:
            raise ValueError(
                f"{self!r} already serves a transport; give each transport its own RedisStorage "
                "(with the same Redis and prefix to share state)"
            )
        self._attached = True
        if asynchronous:
            return AsyncSharedCircuits(self, core, AsyncBackend(self.client, self.timeout))
        return SyncSharedCircuits(self, core, SyncBackend(self.client, self.timeout))


def _private_client(client: Any, timeout: float, asynchronous: bool) -> Any:
    """A client on the same server with the breaker's timeouts and no retries, or the client."""
    redis = _import_redis()
    from redis.backoff import NoBackoff

    base = redis.asyncio.Redis if asynchronous else redis.Redis
    if type(client) is not base:  # cluster clients, subclasses: use as given
        return client
    retry_type = redis.asyncio.retry.Retry if asynchronous else redis.retry.Retry
    pool = client.connection_pool
    settings = {
        name: value
        for name, value in pool.connection_kwargs.items()
        # Per-pool bookkeeping of newer redis-py versions; a new pool makes its own.
        if not name.startswith(("orig_", "maint_"))
    }
    settings.update(
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=retry_type(NoBackoff(), 0),
        decode_responses=False,
    )
    return base(connection_pool=type(pool)(connection_class=pool.connection_class, **settings))


_SHA = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()


class _Backend:
    """What the engine needs from Redis, for one client. ``fork`` makes a child's own."""

    asynchronous = False

    def __init__(self, client: Any, timeout: float) -> None:
        redis = _import_redis()
        self.source = client
        self.timeout = timeout
        self.client = _private_client(client, timeout, self.asynchronous)
        #: a Cluster client: a script may touch only its own circuit's slot
        self.cluster = "cluster" in type(client).__module__
        self.no_script = redis.exceptions.NoScriptError
        self.sha = _SHA
        #: round trips made (a pipeline counts once), for tests and benchmarks
        self.round_trips = 0

    def fork(self) -> Any:
        # The inherited connections belong to the parent: never touch them, make new ones.
        return type(self)(self.source, self.timeout)

    def _pipeline(self, calls: Sequence[Call], mode_key: str | None) -> Any:
        """The script calls (then the run-time default mode, if asked) in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.execute_command("EVALSHA", self.sha, 3, *keys, *args)
        if mode_key is not None:
            pipe.execute_command("HGET", mode_key, "mode")
        return pipe

    def _checked(self, results: list[Any]) -> list[Any] | None:
        """A pipeline's results; None if Redis had lost the script (load it, send again)."""
        if any(isinstance(r, self.no_script) for r in results):
            return None
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results


class SyncBackend(_Backend):
    def call(self, call: Call, mode_key: str | None) -> tuple[Reply, Any]:
        self.round_trips += 1
        keys, args = call
        if mode_key is None:
            try:
                return self._evalsha(keys, args), None
            except self.no_script:
                self.client.script_load(SCRIPT)
                return self._evalsha(keys, args), None
        results = self._run([call], mode_key)
        return parse_reply(results[0]), results[1]

    def _run(self, calls: Sequence[Call], mode_key: str | None) -> list[Any]:
        for _ in range(2):
            results = self._checked(self._pipeline(calls, mode_key).execute(raise_on_error=False))
            if results is not None:
                return results
            self.client.script_load(SCRIPT)
        raise RuntimeError("the breaker script could not be loaded into Redis")

    def _evalsha(self, keys: Sequence[str], args: Sequence[str]) -> Reply:
        return parse_reply(self.client.execute_command("EVALSHA", self.sha, 3, *keys, *args))

    def call_many(self, calls: list[Call]) -> list[Reply]:
        if not calls:
            return []
        self.round_trips += 1
        return [parse_reply(reply) for reply in self._run(calls, None)]

    def scan(self, pattern: str) -> Iterator[str]:
        for name in self.client.scan_iter(match=pattern, count=1000, _type="HASH"):
            yield name.decode() if isinstance(name, bytes) else name

    def set_mode(self, key: str, mode: str) -> None:
        self.client.hset(key, "mode", mode)

    def close(self) -> None:
        if self.client is not self.source:  # our own pool: a client given a pool never closes it
            self.client.close()
            self.client.connection_pool.disconnect()


class AsyncBackend(_Backend):
    asynchronous = True

    def check_loop(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(_TRIO_ERROR) from None

    async def shielded(self, call: Call, mode_key: str | None) -> tuple[Reply, Any]:
        """One call, shielded from the caller's cancellation, so a reply (a probe lease, a
        settlement) is never lost half-way, and bounded: our own client's socket timeouts end it
        first (connect, then reply: at most twice ``timeout``); the outer bound is the backstop
        for a cluster client used as given. Cancelling redis.asyncio mid-connect can leak the
        socket, so the backstop is kept out of the way of the socket timeouts."""
        import anyio

        with anyio.CancelScope(shield=True), anyio.fail_after(2 * self.timeout + 0.05):
            return await self.call(call, mode_key)
        raise AssertionError("unreachable: fail_after raises instead of swallowing")

    async def call(self, call: Call, mode_key: str | None) -> tuple[Reply, Any]:
        self.round_trips += 1
        keys, args = call
        if mode_key is None:
            try:
                return await self._evalsha(keys, args), None
            except self.no_script:
                await self.client.script_load(SCRIPT)
                return await self._evalsha(keys, args), None
        results = await self._run([call], mode_key)
        return parse_reply(results[0]), results[1]

    async def _run(self, calls: Sequence[Call], mode_key: str | None) -> list[Any]:
        for _ in range(2):
            results = self._checked(
                await self._pipeline(calls, mode_key).execute(raise_on_error=False)
            )
            if results is not None:
                return results
            await self.client.script_load(SCRIPT)
        raise RuntimeError("the breaker script could not be loaded into Redis")

    async def _evalsha(self, keys: Sequence[str], args: Sequence[str]) -> Reply:
        return parse_reply(await self.client.execute_command("EVALSHA", self.sha, 3, *keys, *args))

    async def call_many(self, calls: list[Call]) -> list[Reply]:
        if not calls:
            return []
        self.round_trips += 1
        return [parse_reply(reply) for reply in await self._run(calls, None)]

    async def scan(self, pattern: str) -> AsyncIterator[str]:
        async for name in self.client.scan_iter(match=pattern, count=1000, _type="HASH"):
            yield name.decode() if isinstance(name, bytes) else name

    async def set_mode(self, key: str, mode: str) -> None:
        await self.client.hset(key, "mode", mode)

    async def aclose(self) -> None:
        if self.client is not self.source:  # our own pool: a client given a pool never closes it
            await self.client.aclose()
            await self.client.connection_pool.disconnect()
