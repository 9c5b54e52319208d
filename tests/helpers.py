"""Inner transports for the tests: streaming bodies that fail mid-way, gates that hold calls."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import httpx

from breaker_transport import BreakerListener, CallEvent, StateChange

Chunk = bytes | BaseException


@dataclass
class Reply:
    """What a streaming inner transport answers: a status, headers, and body chunks, where an
    exception in ``chunks`` is raised at that point of the body (as a real transport would)."""

    status: int = 200
    chunks: Sequence[Chunk] = (b"ok",)
    headers: dict[str, str] = field(default_factory=dict)


class _AsyncChunks(httpx.AsyncByteStream):
    """Class-based on purpose: an async generator here would add its own trio finalizer warnings."""

    def __init__(self, chunks: Sequence[Chunk], log: list[str]) -> None:
        self._chunks = iter(chunks)
        self._log = log

    def __aiter__(self) -> _AsyncChunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = next(self._chunks, None)
        if chunk is None:
            raise StopAsyncIteration
        if isinstance(chunk, BaseException):
            raise chunk
        return chunk

    async def aclose(self) -> None:
        self._log.append("closed")


class _SyncChunks(httpx.SyncByteStream):
    def __init__(self, chunks: Sequence[Chunk], log: list[str]) -> None:
        self._chunks = iter(chunks)
        self._log = log

    def __iter__(self) -> _SyncChunks:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._chunks, None)
        if chunk is None:
            raise StopIteration
        if isinstance(chunk, BaseException):
            raise chunk
        return chunk

    def close(self) -> None:
        self._log.append("closed")


Handler = Callable[[httpx.Request], "Reply | BaseException"]


class StreamingTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Returns responses whose body is NOT read yet, as ``httpx.AsyncHTTPTransport`` does."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.stream_log: list[str] = []
        self.closed = 0

    def _reply(self, request: httpx.Request) -> Reply:
        self.requests.append(request)
        reply = self.handler(request)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        reply = self._reply(request)
        stream = _AsyncChunks(reply.chunks, self.stream_log)
        return httpx.Response(reply.status, headers=reply.headers, stream=stream, request=request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        reply = self._reply(request)
        stream = _SyncChunks(reply.chunks, self.stream_log)
        return httpx.Response(reply.status, headers=reply.headers, stream=stream, request=request)

    async def aclose(self) -> None:
        self.closed += 1

    def close(self) -> None:
        self.closed += 1


class GatedTransport(httpx.AsyncBaseTransport):
    """Holds every call until ``gate`` is set; counts the calls that reached it."""

    def __init__(self, status: int = 200) -> None:
        self.gate = anyio.Event()
        self.entered = 0
        self.status = status
        self.on_enter: Callable[[], None] = lambda: None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.entered += 1
        self.on_enter()
        await self.gate.wait()
        return httpx.Response(self.status, content=b"done")


def fixed(status: int = 200, content: bytes = b"ok", **headers: str) -> httpx.MockTransport:
    """A MockTransport answering every request with one status (pre-read responses)."""
    return httpx.MockTransport(
        lambda request: httpx.Response(status, content=content, headers=headers)
    )


class Recorder(BreakerListener):
    """Every state change and call event a transport reports, in order."""

    def __init__(self) -> None:
        self.changes: list[StateChange] = []
        self.calls: list[CallEvent] = []

    def on_state_change(self, change: StateChange) -> None:
        self.changes.append(change)

    def on_call(self, event: CallEvent) -> None:
        self.calls.append(event)
