"""Every well-known cache key in one place."""

from __future__ import annotations

RESTART = "qctl:queue:restart"
"""`qctl restart` stores a timestamp here; workers that started before a newer value exit."""

MAINTENANCE = "qctl:maintenance"
"""Present while `qctl down` is in force."""

WORKER_PREFIX = "qctl:worker:"


def worker(host: str, pid: int) -> str:
    """One worker's heartbeat record."""
    return f"{WORKER_PREFIX}{host}:{pid}"


def job_exceptions(uuid: str) -> str:
    """How many exceptions a job (by uuid) has thrown across attempts (max_exceptions)."""
    return f"qctl:job-exceptions:{uuid}"


def job_stalls(uuid: str) -> str:
    """How many times a job's worker died under it (max_stalls)."""
    return f"qctl:job-stalls:{uuid}"


def chain_link(uuid: str) -> str:
    """Present once a chain link's successor (by its uuid) was pushed onto another connection."""
    return f"qctl:chain-link:{uuid}"


def chain_catch(uuid: str) -> str:
    """Present once the chain catch callbacks for a failed link (by its uuid) ran."""
    return f"qctl:chain-catch:{uuid}"
