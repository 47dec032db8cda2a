"""Helpers shared by the Redis integration tests: dispatching, ledgers, raw key access."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import redis

from qctl.jobs.job import Job
from qctl.runtime import Runtime
from tests.support.configs import TestSetup, redis_prefix
from tests.support.processes import read_ledger


def dispatch_all(runtime: Runtime, jobs: list[Job]) -> list[str]:
    return [runtime.dispatcher.dispatch(job) for job in jobs]


def phases(ledger: Path, phase: str) -> Counter[str]:
    """uuid → how many ledger lines of `phase` (start / end / boom) it has."""
    return Counter(line[1] for line in read_ledger(ledger) if line and line[0] == phase)


def raw_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def key(setup: TestSetup, queue: str = "default", suffix: str = "") -> str:
    return f"{redis_prefix(setup)}queues:{queue}{suffix}"
