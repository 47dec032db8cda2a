"""The Redis cache store: plain keys under `<table>:` (the `[cache] table`, default `cache`).

Expiry is Redis's own (PX, milliseconds); `add` is SET NX; `increment` is one Lua script so a
counter and its time to live are created together.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from typing import Any

import redis
from redis import exceptions as rx

from qctl.drivers.redis_client import reason_of, server_of
from qctl.errors import StoreUnavailableError

SCAN_COUNT = 500


def _millis(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, math.ceil(ttl * 1000))


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class RedisCacheStore:
    def __init__(self, url: str, namespace: str = "cache") -> None:
        self.url = url
        self.namespace = f"{namespace}:"
        self._client: Any = None
        self._increment: Any = None

    def get(self, key: str) -> str | None:
        with self._errors("read"):
            value = self._redis().get(self.namespace + key)
        return None if value is None else value.decode("utf-8")

    def put(self, key: str, value: str, ttl: float | None = None) -> None:
        with self._errors("write"):
            self._redis().set(self.namespace + key, value, px=_millis(ttl))

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        with self._errors("write"):
            return bool(self._redis().set(self.namespace + key, value, px=_millis(ttl), nx=True))

    def increment(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        millis = _millis(ttl)
        with self._errors("increment"):
            script = self._increment_script()
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

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _redis(self) -> Any:
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=5, socket_timeout=30)
        return self._client

    def _increment_script(self) -> Any:
        if self._increment is None:
            text = files("qctl.cache").joinpath("lua/increment.lua").read_text(encoding="utf-8")
            self._increment = self._redis().register_script(text)
        return self._increment

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except rx.RedisError as exc:
            raise StoreUnavailableError(f"cache at Redis {server_of(self.url)}: cannot {action}: {reason_of(exc)}") from exc
