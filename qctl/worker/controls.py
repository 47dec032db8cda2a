"""Operator controls shared through the cache store: the restart stamp and maintenance mode.

`qctl restart` stores a new stamp; a worker exits (status 0, after its current
job) once the stamp differs from the one it read at start, so every worker on
every host sharing the store restarts, and workers started later do not.
`qctl down` sets the maintenance flag; workers without --force take no jobs
until `qctl up` removes it. Workers read both at most once a second.
"""

from __future__ import annotations

import json
import logging

from qctl.cache import keys
from qctl.cache.base import CacheStore
from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.errors import StoreUnavailableError
from qctl.worker.throttle import Throttle

log = logging.getLogger("qctl.worker")

CHECK_SECONDS = 1.0


def request_restart(cache: CacheStore, clock: Clock = SYSTEM_CLOCK) -> str:
    """Store a fresh restart stamp (kept forever, as a newer stamp replaces it); returns it."""
    stamp = f"{clock.time():.6f}"
    cache.put(keys.RESTART, stamp)
    return stamp


def enter_maintenance(cache: CacheStore, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Set maintenance mode; False when it was already set (the original time is kept)."""
    return cache.add(keys.MAINTENANCE, json.dumps({"since": clock.time()}))


def leave_maintenance(cache: CacheStore) -> bool:
    """Clear maintenance mode; False when it was not set."""
    return cache.forget(keys.MAINTENANCE)


def maintenance_since(cache: CacheStore) -> float | None:
    """When maintenance mode began (unix seconds), or None when workers are up."""
    value = cache.get(keys.MAINTENANCE)
    if value is None:
        return None
    try:
        return float(json.loads(value)["since"])
    except (ValueError, KeyError, TypeError):
        return 0.0  # set by something else: still down


class CacheControls:
    """A worker's view of the shared flags, refreshed at most once every `every` seconds.

    While the cache is unreachable the last known flags stand (one warning per
    state change); a restart stamp that could not be read at start is taken from
    the first successful read, so an outage never restarts a worker by itself.
    """

    def __init__(self, cache: CacheStore, clock: Clock = SYSTEM_CLOCK, every: float = CHECK_SECONDS) -> None:
        self.cache = cache
        self.throttle = Throttle(every, clock)
        self.started_with: str | None = None
        self.has_baseline = False
        self.restart = False
        self.down = False
        self.unreachable = False
        self.refresh()

    def restart_requested(self) -> bool:
        self.refresh()
        return self.restart

    def is_down(self) -> bool:
        self.refresh()
        return self.down

    def refresh(self) -> None:
        if not self.throttle.due():
            return
        try:
            stamp = self.cache.get(keys.RESTART)
            down = self.cache.get(keys.MAINTENANCE) is not None
        except StoreUnavailableError as exc:
            if not self.unreachable:
                log.warning("%s; keeping the last restart and maintenance flags", exc)
            self.unreachable = True
            return
        if self.unreachable:
            log.warning("cache reachable again; restart and maintenance flags are current")
            self.unreachable = False
        if not self.has_baseline:
            self.started_with, self.has_baseline = stamp, True
        self.restart = stamp != self.started_with
        self.down = down
