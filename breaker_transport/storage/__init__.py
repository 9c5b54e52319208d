"""Where circuit state lives: in process (the default) or shared by every worker through Redis.

::

    import redis.asyncio
    from breaker_transport import AsyncCircuitBreakerTransport
    from breaker_transport.storage import RedisStorage

    transport = AsyncCircuitBreakerTransport(
        storage=RedisStorage(redis.asyncio.Redis(host="redis"), prefix="myapp")
    )

``RedisStorage`` needs the ``redis`` extra (``pip install "breaker-transport[redis]"``); the
package imports ``redis`` only when a ``RedisStorage`` is made.
"""

from ._base import MemoryStorage, Storage, StorageUnavailableError
from ._redis import RedisStorage

__all__ = ["MemoryStorage", "RedisStorage", "Storage", "StorageUnavailableError"]
