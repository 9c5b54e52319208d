"""Response-body wrappers that settle a call when its body ends, fails or is closed.

They are class-based iterators on purpose: a generator would see ``GeneratorExit`` when a sync
caller stops reading early, and an async generator adds its own finalisation warnings under trio.
Each HTTP library flavour mixes these into its own ``SyncByteStream``/``AsyncByteStream`` (the
client asserts that type). The body bytes pass through unchanged; nothing is read or buffered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._circuit import Ticket
    from ._transport import BreakerCore
    from ._types import Outcome


class _BodyState:
    """What the wrapper needs to settle its call; ``ticket`` is None once settled.

    One is built per streamed response, so it is slotted (no instance dict to allocate and fill)
    and built by one ``__init__``.
    """

    __slots__ = (
        "_breaker",
        "_hint",
        "_iterator",
        "_outcome",
        "_request",
        "_response",
        "_slow",
        "_stream",
        "_ticket",
    )
    _iterator: Any  # each twin narrows it
    _ticket: Ticket | None

    def __init__(
        self,
        stream: Any,
        breaker: BreakerCore[Any],
        ticket: Ticket,
        request: Any,
        response: Any,
        outcome: Outcome,
        slow: bool,
        hint: float | None,
    ) -> None:
        self._stream = stream
        self._iterator = None
        self._breaker = breaker
        self._ticket = ticket
        self._request = request
        self._response = response
        self._outcome = outcome
        self._slow = slow
        self._hint = hint

    def _finish(self, exc: BaseException | None) -> Any:
        """Settle once. Returns what the breaker returns: None, or (a shared async storage) an
        awaitable that the async body awaits."""
        ticket = self._ticket
        if ticket is None:
            return None
        self._ticket = None
        return self._breaker._finish_body(
            ticket, self._request, self._response, self._outcome, self._slow, self._hint, exc
        )


class SyncBody(_BodyState):
    """Wraps a sync response stream; settles at end of body, on an error, or at ``close()``."""

    __slots__ = ()
    _iterator: Iterator[bytes] | None

    def __iter__(self) -> Iterator[bytes]:
        self._iterator = iter(self._stream)
        return self

    def __next__(self) -> bytes:
        iterator = self._iterator
        if iterator is None:  # the body ended (see AsyncBody.__anext__)
            raise StopIteration
        try:
            return next(iterator)
        except StopIteration:
            self._iterator = None
            self._finish(None)
            raise
        except BaseException as exc:
            self._iterator = None
            self._finish(exc)
            raise

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._finish(None)


class AsyncBody(_BodyState):
    """Wraps an async response stream; settles at end of body, on an error, or at ``aclose()``."""

    __slots__ = ()
    _iterator: AsyncIterator[bytes] | None

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._iterator = self._stream.__aiter__()
        return self

    async def __anext__(self) -> bytes:
        iterator = self._iterator
        if iterator is None:  # the body ended: nothing more to give
            raise StopAsyncIteration
        try:
            return await iterator.__anext__()
        except StopAsyncIteration:
            # Let go of the finished inner iterator now. The client keeps this wrapper until it
            # collects the response (a reference cycle), and an async generator kept that long
            # stays in asyncio's set of live async generators, which then costs every request.
            self._iterator = None
            pending = self._finish(None)
            if pending is not None:
                await pending
            raise
        except BaseException as exc:
            self._iterator = None  # it raised: it is finished too
            pending = self._finish(exc)
            if pending is not None:
                await pending
            raise

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            pending = self._finish(None)
            if pending is not None:
                await pending
