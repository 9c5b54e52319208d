"""The two HTTP libraries the breaker supports, as one fixture: the same tests run against both.

respx does not mock httpx2, so the contract tests use what both libraries have: ``MockTransport``
(responses come back already read) and ``Scripted``, an inner transport of our own whose
responses stream, so a body can fail after a 200 has been returned.
"""

from __future__ import annotations

import importlib
import sys
from collections import deque
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

#: httpx2 needs Python 3.11+; on 3.10 its tests skip, everywhere else they run (it is in the
#: test extra with that marker, so a missing httpx2 on 3.11+ is an install error, not a skip).
HTTPX2_RUNS = sys.version_info >= (3, 11)


@dataclass(frozen=True)
class Flavour:
    name: str
    lib: ModuleType  # httpx or httpx2
    breaker: ModuleType  # breaker_transport or breaker_transport.httpx2

    @property
    def Async(self) -> Any:
        return self.breaker.AsyncCircuitBreakerTransport

    @property
    def Sync(self) -> Any:
        return self.breaker.CircuitBreakerTransport

    @property
    def CircuitOpenError(self) -> Any:
        return self.breaker.CircuitOpenError

    def error(self, name: str, message: str = "boom") -> BaseException:
        exc: BaseException = getattr(self.lib, name)(message)
        return exc

    def scripted(self, *steps: Any) -> Scripted:
        # A subclass of the library's base transports too: some wrappers (httpx-retries) check.
        lib = self.lib
        kind = type("Scripted", (Scripted, lib.BaseTransport, lib.AsyncBaseTransport), {})
        scripted: Scripted = kind(self, steps)
        return scripted

    def mock(self, *statuses: int) -> Any:
        """A MockTransport answering ``statuses`` in turn (pre-read responses), sync and async."""
        queue = deque(statuses)

        def handler(request: Any) -> Any:
            return self.lib.Response(queue.popleft(), content=b"pre-read")

        return self.lib.MockTransport(handler)


def load(name: str) -> Flavour:
    if name == "httpx":
        return Flavour(
            "httpx", importlib.import_module("httpx"), importlib.import_module("breaker_transport")
        )
    if not HTTPX2_RUNS:
        version = sys.version.split()[0]
        pytest.skip(f"httpx2 needs Python 3.11+ (this is Python {version})")
    return Flavour(
        "httpx2",
        importlib.import_module("httpx2"),
        importlib.import_module("breaker_transport.httpx2"),
    )


class Scripted:
    """An inner transport (sync and async) that plays ``steps`` in order, one per request.

    A step is a status (a streaming response with body ``b"chunk-1chunk-2"``), an exception name
    (raised before any response), ``(status, "ReadError")``: the first chunk, then that error, or
    ``(status, {headers})``.
    ``sent`` counts the requests that reached it.
    """

    def __init__(self, flavour: Flavour, steps: tuple[Any, ...]) -> None:
        self.flavour = flavour
        self.steps = deque(steps)
        self.sent = 0
        self.closed = 0
        lib = flavour.lib
        self._body = type("Body", (_Chunks, lib.SyncByteStream, lib.AsyncByteStream), {})

    def add(self, *steps: Any) -> None:
        self.steps.extend(steps)

    def _respond(self, request: Any) -> Any:
        self.sent += 1
        step = self.steps.popleft()
        if isinstance(step, str):
            raise getattr(self.flavour.lib, step)(f"scripted {step}", request=request)
        status, extra = (step, None) if isinstance(step, int) else step
        headers = extra if isinstance(extra, dict) else {}
        error = None
        if isinstance(extra, str):
            error = getattr(self.flavour.lib, extra)(f"scripted {extra} mid-body")
        return self.flavour.lib.Response(
            status, headers=headers, stream=self._body(error), request=request
        )

    def handle_request(self, request: Any) -> Any:
        return self._respond(request)

    async def handle_async_request(self, request: Any) -> Any:
        return self._respond(request)

    def close(self) -> None:
        self.closed += 1

    async def aclose(self) -> None:
        self.closed += 1

    def __enter__(self) -> Scripted:
        return self

    async def __aenter__(self) -> Scripted:
        return self


class _Chunks:
    """Two chunks, or one chunk then ``error``; a class-based iterator, sync and async."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.position = 0
        self.closed = False

    def _next(self, stop: type[Exception]) -> bytes:
        self.position += 1
        if self.position == 1:
            return b"chunk-1"
        if self.position == 2:
            if self.error is not None:
                raise self.error
            return b"chunk-2"
        raise stop

    def __iter__(self) -> _Chunks:
        return self

    def __next__(self) -> bytes:
        return self._next(StopIteration)

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        return self._next(StopAsyncIteration)

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True
