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
    """What the wrapper needs to settle its call; ``ticket`` is None once settled."""

    _breaker: BreakerCore[Any]
    _ticket: Ticket | None
    _request: Any
    _response: Any
    _outcome: Outcome
    _slow: bool
    _hint: float | None

    def _bind(
        self,
        breaker: BreakerCore[Any],
        ticket: Ticket,
        request: Any,
        response: Any,
        outcome: Outcome,
        slow: bool,
        hint: float | None,
    ) -> None:
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
        self._iterator: Iterator[bytes] | None = None
        self._bind(breaker, ticket, request, response, outcome, slow, hint)

    def __iter__(self) -> Iterator[bytes]:
        self._iterator = iter(self._stream)
        return self

    def __next__(self) -> bytes:
        assert self._iterator is not None
        try:
            return next(self._iterator)
        except StopIteration:
            self._finish(None)
            raise
        except BaseException as exc:
            self._finish(exc)
            raise

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._finish(None)


class AsyncBody(_BodyState):
    """Wraps an async response stream; settles at end of body, on an error, or at ``aclose()``."""

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
        self._iterator: AsyncIterator[bytes] | None = None
        self._bind(breaker, ticket, request, response, outcome, slow, hint)

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._iterator = self._stream.__aiter__()
        return self

    async def __anext__(self) -> bytes:
        assert self._iterator is not None
        try:
            return await self._iterator.__anext__()
        except StopAsyncIteration:
            pending = self._finish(None)
            if pending is not None:
                await pending
            raise
        except BaseException as exc:
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
