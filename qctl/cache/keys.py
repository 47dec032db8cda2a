"""Every well-known cache key in one place."""

from __future__ import annotations

RESTART = "qctl:queue:restart"
"""`qctl restart` stores a timestamp here; workers that started before a newer value exit."""

MAINTENANCE = "qctl:maintenance"
"""Present while `qctl down` is in force."""

PAUSED_PREFIX = "qctl:paused:"


def paused_queue(connection: str, queue: str) -> str:
    """Present while `qctl pause CONNECTION:QUEUE` is in force (the value names both, as the key may be shortened)."""
    return _bounded(f"{PAUSED_PREFIX}{connection}:{queue}")


WORKER_PREFIX = "qctl:worker:"


def worker(host: str, pid: int) -> str:
    """One worker's heartbeat record."""
    return f"{WORKER_PREFIX}{host}:{pid}"


METRICS_MINUTE_PREFIX = "qctl:metrics:m:"
METRICS_HOUR_PREFIX = "qctl:metrics:h:"


def metrics_bucket(prefix: str, bucket: int, worker: str) -> str:
    """One worker's totals for one minute (or hour) bucket, numbered from the epoch."""
    return f"{prefix}{bucket}:{worker}"


def job_exceptions(uuid: str) -> str:
    """How many exceptions a job (by uuid) has thrown across attempts (max_exceptions)."""
    return f"qctl:job-exceptions:{uuid}"


def job_hard_timeout(uuid: str) -> str:
    """Set when the hard timeout ended a worker running this job (read back from its witness file)."""
    return f"qctl:job-hard-timeout:{uuid}"


def job_stalls(uuid: str) -> str:
    """How many times a job's worker died under it (max_stalls)."""
    return f"qctl:job-stalls:{uuid}"


def chain_link(uuid: str) -> str:
    """Present once a chain link's successor (by its uuid) was pushed onto another connection."""
    return f"qctl:chain-link:{uuid}"


def chain_catch(uuid: str) -> str:
    """Present once the chain catch callbacks for a failed link (by its uuid) ran."""
    return f"qctl:chain-catch:{uuid}"


KEY_ROOM = 200
"""Longest key kept as written; a longer one (a user's key) is shortened to a digest that stays unique."""


def _bounded(key: str) -> str:
    if len(key) <= KEY_ROOM:
        return key
    import hashlib

    return key[:100] + ":" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def unique_job(name: str, unique_id: str) -> str:
    """The lock a ShouldBeUnique job (by its display name and unique id) holds while queued."""
    return _bounded(f"qctl:unique:{name}:{unique_id}")


def overlap(name: str | None, key: str) -> str:
    """WithoutOverlapping's lock: per job class and key, or per key alone when shared (`name` None)."""
    return _bounded(f"qctl:overlap:{key}" if name is None else f"qctl:overlap:{name}:{key}")


def limiter(name: str, key: str, limit: int, period: float) -> str:
    """One rate limit's hits: the limiter's name, the limit's `by()` key, and its size."""
    return _bounded(f"qctl:limiter:{name}:{limit}/{period:g}:{key}")


def throttle(key: str) -> str:
    """ThrottlesExceptions: exceptions counted per key, and the time until which the job is held back."""
    return _bounded(f"qctl:throttle:{key}")
