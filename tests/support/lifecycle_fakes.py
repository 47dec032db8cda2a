"""In-memory stand-ins for unit tests of the worker lifecycle: a clock that never sleeps, a cache, a driver."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from qctl.clock import Clock
from qctl.errors import StoreUnavailableError


class FakeClock(Clock):
    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MemoryCache:
    """The CacheStore contract in a dict; `down = True` makes every call fail like a lost server."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.values: dict[str, tuple[str, float | None]] = {}
        self.reads = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailableError("cache memory://: cannot read: server down")

    def _live(self, key: str) -> str | None:
        value, expires = self.values.get(key, (None, None))
        if value is None or (expires is not None and expires <= self.clock.time()):
            return None
        return value

    def get(self, key: str) -> str | None:
        self._check()
        self.reads += 1
        return self._live(key)

    def many(self, keys: Sequence[str]) -> list[str | None]:
        self._check()
        self.reads += 1
        return [self._live(key) for key in keys]

    def put(self, key: str, value: str, ttl: float | None = None) -> None:
        self._check()
        self.values[key] = (value, None if ttl is None else self.clock.time() + ttl)

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        self._check()
        if self._live(key) is not None:
            return False
        self.put(key, value, ttl)
        return True

    def increment(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        self._check()
        current = int(self._live(key) or 0) + by
        self.put(key, str(current), ttl)
        return current

    def forget(self, key: str) -> bool:
        self._check()
        return self.values.pop(key, None) is not None

    def items(self, prefix: str) -> dict[str, str]:
        self._check()
        return {k: v for k in self.values if k.startswith(prefix) and (v := self._live(k)) is not None}

    def close(self) -> None:
        return None


@dataclass
class FakeReserved:
    raw: bytes
    queue: str = "default"
    connection_name: str = "fake"
    attempts: int = 1
    reclaimed: bool = False

    @property
    def key(self) -> str:
        return json.loads(self.raw).get("uuid", "?")

    def delete(self) -> bool:
        return True

    def release(self, delay: float) -> bool:
        return True

    def renew(self) -> bool:
        return True


@dataclass
class FakeDriver:
    jobs: list[FakeReserved] = field(default_factory=list)
    connection_name: str = "fake"
    default_queue: str = "default"
    retry_after: int | None = None
    pops: int = 0
    asked: list[tuple[str, ...]] = field(default_factory=list)
    """The queues of each pop, in order."""

    def pop(self, queues: Sequence[str]) -> FakeReserved | None:
        self.pops += 1
        self.asked.append(tuple(queues))
        return self.jobs.pop(0) if self.jobs else None

    def push(self, payload: str, queue: str, delay: float = 0) -> None:
        self.jobs.append(FakeReserved(payload.encode(), queue))


@dataclass
class FakeRunner:
    """Runs nothing: records each job and lets a test act in the middle of one (`during`)."""

    ran: list[FakeReserved] = field(default_factory=list)
    during: object = None

    def process(self, job: FakeReserved, defer_delete: bool = False) -> FakeRunning:
        self.ran.append(job)
        if callable(self.during):
            self.during(job)
        return FakeRunning()


@dataclass
class FakeRunning:
    """What the real runner returns; the fake's jobs are always settled (deleted) by the runner."""

    def is_settled(self) -> bool:
        return True

    def has_failed(self) -> bool:
        return False

    def is_released(self) -> bool:
        return False


def payload(n: int) -> FakeReserved:
    return FakeReserved(json.dumps({"uuid": f"job-{n}", "displayName": "tests.Fake", "data": {"commandName": "tests.Fake"}}).encode())
