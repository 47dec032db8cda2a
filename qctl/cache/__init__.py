"""A small shared store for flags, counters and heartbeats (a subset of Laravel's Cache)."""

from __future__ import annotations

from qctl.cache.base import CacheStore
from qctl.config import StoreConfig

__all__ = ["CacheStore", "connect"]


def connect(config: StoreConfig) -> CacheStore:
    if config.driver == "redis":
        from qctl.cache.redis import RedisCacheStore

        return RedisCacheStore(config.url, config.table)
    from qctl.cache.database import DatabaseCacheStore

    return DatabaseCacheStore(config.url, config.table)
