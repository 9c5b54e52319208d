"""The storage interface: where a transport keeps the state of its circuits.

``MemoryStorage`` (the default, also what ``storage=None`` means) keeps it in the transport's own
registry: nothing shared, no I/O, exactly the in-process path of ``_transport.py``. A shared storage
(``RedisStorage``) attaches a ``SharedCircuits`` engine to the transport instead; the transport then
routes admissions, settlements and the operator API through it (see ``_shared.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._transport import BreakerCore
    from ._shared import SharedCircuits


class StorageUnavailableError(RuntimeError):
    """An operator call (reset, force_open, set_mode) could not reach the shared storage.

    It was applied to this worker's own circuits; the shared state did not change. Requests never
    raise this: they fall back to in-process state while the storage is away.
    """


class Storage:
    """Base class of circuit storages. Pass one as ``storage=`` to a transport."""

    def attach(self, core: BreakerCore[Any], *, asynchronous: bool) -> SharedCircuits | None:
        """Bind to one transport; return its shared engine, or None for in-process state."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MemoryStorage(Storage):
    """In-process state (the default): fast, per worker, nothing shared."""

    def attach(self, core: BreakerCore[Any], *, asynchronous: bool) -> None:
        return None


def attach_storage(storage: Any, core: BreakerCore[Any], *, asynchronous: bool) -> Any:
    """What ``_setup`` stores as ``core._storage``: None (in-process) or a shared engine."""
    if storage is None:
        return None
    if not isinstance(storage, Storage):
        raise TypeError(
            "storage must be a breaker_transport.storage.Storage (MemoryStorage, RedisStorage) "
            f"or None, got {storage!r} ({type(storage).__name__})"
        )
    return storage.attach(core, asynchronous=asynchronous)
