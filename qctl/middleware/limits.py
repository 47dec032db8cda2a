"""Named rate limiters: `RateLimiter.for_(name, fn)` where `fn(job)` returns the limits a job runs under.

Registered at import by the `app` modules (a worker imports them at start), read by `RateLimited`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from qctl.middleware.base import MiddlewareError

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `max_jobs` per `period` seconds, counted per `key` (`by()`); `Limit.none()` is no limit."""

    max_jobs: int
    period: float
    key: str = ""

    @classmethod
    def per_second(cls, max_jobs: int, seconds: float = 1) -> Limit:
        return cls.of(max_jobs, seconds, "per_second")

    @classmethod
    def per_minute(cls, max_jobs: int, minutes: float = 1) -> Limit:
        return cls.of(max_jobs, minutes * MINUTE, "per_minute")

    @classmethod
    def per_hour(cls, max_jobs: int, hours: float = 1) -> Limit:
        return cls.of(max_jobs, hours * HOUR, "per_hour")

    @classmethod
    def per_day(cls, max_jobs: int, days: float = 1) -> Limit:
        return cls.of(max_jobs, days * DAY, "per_day")

    @classmethod
    def none(cls) -> Limit:
        return cls(0, 0.0)

    @classmethod
    def of(cls, max_jobs: int, period: float, name: str = "Limit") -> Limit:
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
            raise MiddlewareError(f"Limit.{name}({max_jobs!r}): the number of jobs must be a whole number >= 1 (Limit.none() for no limit)")
        if isinstance(period, bool) or not isinstance(period, int | float) or not 0 < period < float("inf"):
            raise MiddlewareError(f"Limit.{name}: the period must be a number of seconds > 0, not {period!r}")
        return cls(max_jobs, float(period))

    def by(self, key: Any) -> Limit:
        """Count separately per key (a user id, a tenant): each key gets the whole limit."""
        return replace(self, key=str(key))

    @property
    def unlimited(self) -> bool:
        return self.max_jobs == 0


LimiterFn = Callable[[Any], "Limit | list[Limit] | tuple[Limit, ...] | None"]


class RateLimiter:
    """The registry of named limiters (process-wide, like Laravel's RateLimiter facade)."""

    _limiters: dict[str, LimiterFn] = {}

    @classmethod
    def for_(cls, name: str, fn: LimiterFn) -> None:
        if not isinstance(name, str) or not name:
            raise MiddlewareError(f"a rate limiter needs a non-empty name, not {name!r}")
        if not callable(fn):
            raise MiddlewareError(f"rate limiter {name!r}: {fn!r} is not callable (it takes the job and returns Limit(s))")
        cls._limiters[name] = fn

    @classmethod
    def limiter(cls, name: str) -> LimiterFn:
        try:
            return cls._limiters[name]
        except KeyError:
            raise MiddlewareError(
                f"no rate limiter named {name!r}: register one with qctl.RateLimiter.for_({name!r}, fn) in an app module"
            ) from None

    @classmethod
    def forget(cls, name: str) -> None:
        cls._limiters.pop(name, None)

    @classmethod
    def limits_for(cls, name: str, job: Any) -> list[Limit]:
        """The limits `name` gives this job, checked."""
        found = cls.limiter(name)(job)
        limits = [found] if isinstance(found, Limit) or found is None else list(found)
        for limit in limits:
            if limit is not None and not isinstance(limit, Limit):
                raise MiddlewareError(f"rate limiter {name!r} returned {limit!r}; expected qctl.Limit values")
        return [limit for limit in limits if limit is not None and not limit.unlimited]
