"""Unique jobs: a lock taken at dispatch, held while the job waits, released when it settles.

`ShouldBeUnique`: while a job with the same class and `unique_id` is queued (or running),
`dispatch()` pushes nothing and returns None. The lock lives on a cache store (`unique_via()`,
default `[cache]`) for `unique_for` seconds — never longer than the store's lock cap (a day),
so a job whose payload vanished frees its id then at the latest. The lock's owner is the job's
uuid, so only that job (or a command clearing it) ever releases it, and a lock that expired and
was taken by a newer dispatch is never released by the older job.

Released (as Laravel does): after success — including a job its middleware deleted — or a
final failure; for `ShouldBeUniqueUntilProcessing` just before `handle()` runs (or when the
middleware stopped it without a release). A released job keeps its lock. Also released when
the job leaves by another road: `qctl clear`, `qctl forget`/`flush` of its failed record.
Only `dispatch()` (and `qctl.dispatch`) takes the lock: jobs of a batch or a chain and
`Queue.bulk` take none.

The payload records where the lock is (`data.uniqueLock = {"key", "via"}`), so the worker and
the commands find it without rebuilding the job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qctl.bus.hooks import JobHooks
from qctl.cache import keys
from qctl.errors import SerializationError, StoreUnavailableError
from qctl.jobs.contracts import ShouldBeUnique, ShouldBeUniqueUntilProcessing

if TYPE_CHECKING:
    from qctl.bus.hooks import SettlingJob
    from qctl.cache.base import CacheStore
    from qctl.jobs.job import Job

log = logging.getLogger("qctl.unique")

UNIQUE_LOCK = "uniqueLock"
"""The payload field (inside `data`) naming a unique job's lock: {"key": ..., "via": store name or null}."""
MARKER = b'"uniqueLock"'
"""What a stored payload holding a unique lock contains (commands look for it before parsing)."""

Caches = Callable[[str | None], "CacheStore"]


@dataclass(frozen=True, slots=True)
class LockSpec:
    key: str
    via: str | None
    ttl: float | None

    def field(self) -> dict[str, Any]:
        return {UNIQUE_LOCK: {"key": self.key, "via": self.via}}


def lock_spec(job: Job) -> LockSpec | None:
    """The lock a job must hold to be queued, or None (not unique); a bad option is a clear error."""
    if not isinstance(job, ShouldBeUnique):
        return None
    name = job.display_name()
    unique_id = job.option("unique_id")
    if unique_id is None:
        unique_id = ""
    if isinstance(unique_id, bool) or not isinstance(unique_id, str | int):
        raise SerializationError(f"{name}: unique_id must be a string or an int, not {type(unique_id).__qualname__} {unique_id!r}")
    ttl = job.option("unique_for")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 <= ttl < float("inf")):
        raise SerializationError(f"{name}: unique_for must be a number of seconds >= 0, not {ttl!r}")
    via = getattr(job, "unique_via", None)
    if callable(via):
        via = via()
    if via is not None and not isinstance(via, str):
        raise SerializationError(f"{name}: unique_via() must return the name of a cache store ([caches.NAME]), not {via!r}")
    return LockSpec(keys.unique_job(name, str(unique_id)), via, float(ttl) if ttl else None)


def lock_of(data: Any) -> tuple[str, str | None] | None:
    """(key, store name) from a payload's `data`, when it names a unique lock."""
    found = data.get(UNIQUE_LOCK) if isinstance(data, dict) else None
    if not isinstance(found, dict) or not isinstance(found.get("key"), str):
        return None
    via = found.get("via")
    return found["key"], via if isinstance(via, str) else None


@dataclass
class UniqueLocks:
    """Taking and releasing unique jobs' locks on the cache stores."""

    caches: Caches

    def acquire(self, spec: LockSpec, owner: str) -> bool:
        return self.caches(spec.via).acquire(spec.key, owner, spec.ttl)

    def release(self, key: str, via: str | None, owner: str) -> bool:
        return self.caches(via).release(key, owner)

    def release_quietly(self, key: str, via: str | None, owner: str) -> None:
        """Release, logging (not raising) when the store is down: the lock then lapses at its expiry."""
        try:
            self.release(key, via, owner)
        except StoreUnavailableError as exc:
            log.warning("job %s: its unique lock %s stays until it expires: %s", owner, key, exc)

    def release_payloads(self, payloads: Iterable[bytes | str]) -> int:
        """Release the locks stored payloads hold (jobs cleared or forgotten); how many were released."""
        released = 0
        for raw in payloads:
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):
                continue
            found = lock_of(data.get("data")) if isinstance(data, dict) else None
            uuid = data.get("uuid") if isinstance(data, dict) else None
            if found is not None and isinstance(uuid, str):
                released += self.release(found[0], found[1], uuid)
        return released


@dataclass
class UniqueHooks(JobHooks):
    """Release a unique job's lock at the moments Laravel's table says."""

    locks: UniqueLocks

    def before_handler(self, running: SettlingJob, job: Job) -> None:
        if isinstance(job, ShouldBeUniqueUntilProcessing):
            self.release(running)

    def after_success(self, running: SettlingJob, job: Job) -> None:
        if not (isinstance(job, ShouldBeUniqueUntilProcessing) and getattr(running, "handled", False)):
            self.release(running)

    def after_failure(self, running: SettlingJob, exc: BaseException) -> None:
        self.release(running)

    def after_discard(self, running: SettlingJob) -> None:
        self.release(running)

    def release(self, running: SettlingJob) -> None:
        envelope = running.envelope
        if envelope is None:  # a payload refused before it was read: the lock it names, if any, goes too
            raw = getattr(running, "raw", b"")
            if MARKER in raw:
                try:
                    self.locks.release_payloads([raw])
                except StoreUnavailableError as exc:
                    log.warning("job %s: its unique lock stays until it expires: %s", running.job_id, exc)
            return
        found = lock_of(envelope.extra_data)
        if found is not None:
            self.locks.release_quietly(found[0], found[1], running.job_id)
