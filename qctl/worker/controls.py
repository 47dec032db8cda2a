"""Operator controls shared through the cache store: the restart stamp, maintenance mode, paused queues.

`qctl restart` stores a new stamp; a worker exits (status 0, after its current
job) once the stamp differs from the one it read at start, so every worker on
every host sharing the store restarts, and workers started later do not.
`qctl down` sets the maintenance flag; workers without --force take no jobs
until `qctl up` removes it. `qctl pause CONNECTION:QUEUE` sets one flag per queue; a worker
skips the paused ones among its queues (and keeps taking jobs from the others) until
`qctl continue` removes the flag. Workers read all of these in one cache call at most once a second.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from qctl.cache import keys
from qctl.cache.base import CacheStore
from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.config import Config
from qctl.drivers.names import check_queue_name
from qctl.errors import StoreUnavailableError, UsageError
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


@dataclass(frozen=True)
class PausedQueue:
    connection: str
    queue: str
    since: float


def pause_queue(cache: CacheStore, connection: str, queue: str, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Pause one queue of a connection; False when it was already paused (the original time is kept)."""
    value = json.dumps({"connection": connection, "queue": queue, "since": clock.time()})
    return cache.add(keys.paused_queue(connection, queue), value)


def continue_queue(cache: CacheStore, connection: str, queue: str) -> bool:
    """Let workers take jobs from the queue again; False when it was not paused."""
    return cache.forget(keys.paused_queue(connection, queue))


def paused_since(cache: CacheStore, connection: str, queue: str) -> float | None:
    """When the queue was paused (unix seconds), or None when it is not."""
    value = cache.get(keys.paused_queue(connection, queue))
    if value is None:
        return None
    try:
        return float(json.loads(value)["since"])
    except (ValueError, KeyError, TypeError):
        return 0.0  # set by something else: still paused


def queue_targets(config: Config, texts: Sequence[str], command: str) -> list[tuple[str, str]]:
    """`CONNECTION:QUEUE` (or a bare `CONNECTION`: its default queue, as Laravel reads it) as
    (connection, queue) pairs; the first that names no worker-fed queue is a UsageError."""
    return [_queue_target(config, text, command) for text in texts]


def _queue_target(config: Config, text: str, command: str) -> tuple[str, str]:
    connection, colon, queue = text.partition(":")
    if not connection or (colon and not queue):
        raise UsageError(f"{command} {text!r}: expected CONNECTION:QUEUE, like database:emails")
    if connection not in config.connections:
        known = ", ".join(sorted(config.connections))
        raise UsageError(f"{command} {text!r}: no connection named {connection!r} (expected one of {known})")
    settings = config.connection(connection)
    if settings.driver in ("sync", "null"):
        raise UsageError(f"{command} {text!r}: a {settings.driver} connection has no workers to pause")
    queue = queue if colon else settings.queue
    check_queue_name(queue, settings.driver, f"{command} {text!r}: queue")
    return connection, queue


def paused_queues(cache: CacheStore) -> list[PausedQueue]:
    """Every paused queue (connection, queue order); for listings, never for the worker loop."""
    found = []
    for value in cache.items(keys.PAUSED_PREFIX).values():
        try:
            data = json.loads(value)
            found.append(PausedQueue(str(data["connection"]), str(data["queue"]), float(data["since"])))
        except (ValueError, KeyError, TypeError):
            continue  # written by something else
    return sorted(found, key=lambda p: (p.connection, p.queue))


class CacheControls:
    """A worker's view of the shared flags, refreshed at most once every `every` seconds.

    While the cache is unreachable the last known flags stand (one warning per
    state change); a restart stamp that could not be read at start is taken from
    the first successful read, so an outage never restarts a worker by itself.
    """

    def __init__(self, cache: CacheStore, clock: Clock = SYSTEM_CLOCK, every: float = CHECK_SECONDS,
                 connection: str = "", queues: Sequence[str] = ()) -> None:
        self.cache = cache
        self.pause_flags = {keys.paused_queue(connection, queue): queue for queue in queues}
        self.paused: frozenset[str] = frozenset()
        """The worker's queues paused at the last read; the same object until that set changes."""
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

    def paused_queues(self) -> frozenset[str]:
        self.refresh()
        return self.paused

    def refresh(self) -> None:
        if not self.throttle.due():
            return
        try:
            stamp, down, *flags = self.cache.many([keys.RESTART, keys.MAINTENANCE, *self.pause_flags])
        except StoreUnavailableError as exc:
            if not self.unreachable:
                log.warning("%s; keeping the last restart, maintenance and pause flags", exc)
            self.unreachable = True
            return
        if self.unreachable:
            log.warning("cache reachable again; restart, maintenance and pause flags are current")
            self.unreachable = False
        if not self.has_baseline:
            self.started_with, self.has_baseline = stamp, True
        self.restart = stamp != self.started_with
        self.down = down is not None
        paused = frozenset(queue for queue, flag in zip(self.pause_flags.values(), flags, strict=True) if flag is not None)
        if paused != self.paused:
            self.paused = paused
