"""A small shared store for flags, counters, locks, rate limits and heartbeats (a subset of Laravel's Cache)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qctl.cache.base import CacheStore
    from qctl.config import StoreConfig

__all__ = ["CacheStore", "connect"]


def connect(config: StoreConfig) -> CacheStore:
    if config.driver == "redis":
        from qctl.cache.redis import RedisCacheStore

        return RedisCacheStore(config.url, config.table, where=config.url_key)
    if config.driver == "memory":
        from qctl.cache.memory import MemoryCacheStore

        return MemoryCacheStore()
    from qctl.cache.database import DatabaseCacheStore

    return DatabaseCacheStore(config.url, config.table)


def __getattr__(name: str) -> object:
    if name == "CacheStore":
        from qctl.cache.base import CacheStore

        return CacheStore
    raise AttributeError(name)
