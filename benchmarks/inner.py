"""The inner transports every competitor wraps: the same object for all of them in a variant.

- ``pre_read()``: ``httpx.MockTransport``; its responses come back already read, so a breaker
  settles them at once.
- ``streaming()``: returns the headers with the body still unread, as real transports do; the
  caller reads and closes it, so a breaker that settles at the end of the body is measured with
  its stream wrapper.
- ``failing()``: every call raises ``httpx.ConnectError`` (a host that is down).
- ``every_nth_fails(n)``: a 503 on every n-th call, a 200 otherwise (deterministic, for windows).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx

BODY = b'{"status": "ok", "items": [1, 2, 3]}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers=_HEADERS, content=BODY)


def pre_read() -> httpx.MockTransport:
    """A 200 with a small JSON body, already read when it is returned."""
    return httpx.MockTransport(_ok)


class _UnreadBody(httpx.AsyncByteStream, httpx.SyncByteStream):
    """One chunk, handed over only when the caller iterates (like httpcore's response stream)."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield BODY

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield BODY

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


class Streaming(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """A 200 whose body is still unread when the transport returns."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=_HEADERS, stream=_UnreadBody())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=_HEADERS, stream=_UnreadBody())


def streaming() -> Streaming:
    return Streaming()


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def failing() -> httpx.MockTransport:
    """Every call raises ``httpx.ConnectError``, as a request to a host that is down does."""
    return httpx.MockTransport(_refuse)


def every_nth_fails(n: int) -> httpx.MockTransport:
    """A 503 on every ``n``-th call and a 200 otherwise: a failure rate of exactly 1/n."""
    count = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        if count % n == 0:
            return httpx.Response(503, headers=_HEADERS, content=BODY)
        return httpx.Response(200, headers=_HEADERS, content=BODY)

    return httpx.MockTransport(handler)
