"""The Redis cache store: plain keys under `<table>:` (the `[cache] table`, default `cache`).

Expiry is Redis's own (PX, milliseconds); `add` is SET NX; `increment` is one Lua script so a
counter and its time to live are created together. Locks live under `<table>:lock:<key>`; a rate
limiter is a hash of bucket counts under `<table>:limiter:<key>`, counted by one script that reads
the server's TIME, so every client host shares one clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis import exceptions as rx

from qctl.cache import limits
from qctl.cache.base import Hit, keep_trying, lock_seconds
from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.drivers.redis_client import client_identity, reason_of, refusal, server_of
from qctl.drivers.scripts import RegisteredScripts
from qctl.errors import StoreUnavailableError

SCAN_COUNT = 500
LOCK_PREFIX = "lock:"


def _millis(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, math.ceil(ttl * 1000))


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class RedisCacheStore:
    def __init__(self, url: str, namespace: str = "cache", clock: Clock = SYSTEM_CLOCK, where: str = "") -> None:
        self.url = url
        self.where = where  # the config key of the URL, for a refusal that retrying cannot heal
        self.namespace = f"{namespace}:"
        self.clock = clock  # only block() sleeps on it: expiry is Redis's PX, the limiter reads Redis's TIME
        self._client: Any = None
        self._script = RegisteredScripts("qctl.cache", self._redis)

    def get(self, key: str) -> str | None:
        with self._errors("read"):
            value = self._redis().get(self.namespace + key)
        return None if value is None else value.decode("utf-8")

    def many(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        with self._errors("read"):
            values = self._redis().mget([self.namespace + key for key in keys])
        return [None if value is None else value.decode("utf-8") for value in values]

    def put(self, key: str, value: str, ttl: float | None = None) -> None:
        with self._errors("write"):
            self._redis().set(self.namespace + key, value, px=_millis(ttl))

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        with self._errors("write"):
            return bool(self._redis().set(self.namespace + key, value, px=_millis(ttl), nx=True))

    def increment(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        millis = _millis(ttl)
        with self._errors("increment"):
            script = self._script("increment")
            return int(script(keys=[self.namespace + key], args=[by, "" if millis is None else millis]))

    def forget(self, key: str) -> bool:
        with self._errors("delete"):
            return bool(self._redis().delete(self.namespace + key))

    def items(self, prefix: str) -> dict[str, str]:
        pattern = _glob_escape(self.namespace + prefix) + "*"
        with self._errors("read"):
            client = self._redis()
            keys = list(client.scan_iter(match=pattern, count=SCAN_COUNT))
            values = client.mget(keys) if keys else []
        cut = len(self.namespace)
        return {k.decode("utf-8")[cut:]: v.decode("utf-8") for k, v in zip(keys, values, strict=True) if v is not None}

    # Locks: SET NX PX with the owner as the value; renewal and compare-and-delete in Lua.

    def acquire(self, key: str, owner: str, ttl: float | None) -> bool:
        millis = _millis(lock_seconds(ttl))
        with self._errors("acquire a lock"):
            return bool(self._script("acquire")(keys=[self._lock(key)], args=[owner, millis]))

    def block(self, key: str, owner: str, ttl: float | None, timeout: float) -> bool:
        return keep_trying(lambda: self.acquire(key, owner, ttl), timeout, self.clock)

    def release(self, key: str, owner: str) -> bool:
        with self._errors("release a lock"):
            return bool(self._script("release")(keys=[self._lock(key)], args=[owner]))

    def force_release(self, key: str) -> bool:
        with self._errors("release a lock"):
            return bool(self._redis().delete(self._lock(key)))

    def owner(self, key: str) -> str | None:
        with self._errors("read a lock"):
            value = self._redis().get(self._lock(key))
        return None if value is None else value.decode("utf-8")

    # Rate limits: see qctl.cache.limits for the window.

    def hit(self, key: str, limit: int, period: float) -> Hit:
        limits.check_window(limit, period)
        micros = max(limits.BUCKETS, round(period * 1_000_000))
        with self._errors("count a hit"):
            allowed, remaining, retry = self._script("hit")(keys=[self._limiter(key)], args=[limit, micros, limits.BUCKETS])
        return Hit(bool(allowed), int(remaining), int(retry) / 1_000_000)

    def reset_hits(self, key: str) -> None:
        with self._errors("reset hits"):
            self._redis().delete(self._limiter(key))

    def hits(self, key: str, period: float) -> int:
        limits.check_period(period)
        with self._errors("read hits"):
            pipe = self._redis().pipeline(transaction=True)  # the server's now, with the counts it applies to
            (seconds, micros), raw = pipe.time().hgetall(self._limiter(key)).execute()
        counts = {int(bucket): int(hits) for bucket, hits in raw.items() if bucket.isdigit()}  # not s, l, n
        return limits.counted(counts, seconds + micros / 1_000_000, period)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _redis(self) -> Any:
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=5, socket_timeout=30,
                                                 **client_identity())
        return self._client

    def _lock(self, key: str) -> str:
        return f"{self.namespace}{LOCK_PREFIX}{key}"

    def _limiter(self, key: str) -> str:
        return f"{self.namespace}{limits.LIMITER_PREFIX}{key}"

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except rx.RedisError as exc:
            refused = refusal(exc, self.where, server_of(self.url))
            if refused is not None:
                raise refused from exc
            raise StoreUnavailableError(f"cache at Redis {server_of(self.url)}: cannot {action}: {reason_of(exc)}") from exc
