"""Why a worker stops, and the exit status each reason gives its process manager."""

from __future__ import annotations

from enum import StrEnum

EXIT_OK = 0
EXIT_ERROR = 1
"""A job timed out (the worker is killed so no stuck code lingers) or the store kept failing."""
EXIT_USAGE = 2
EXIT_MEMORY = 12
"""Laravel's EXIT_MEMORY_LIMIT: the worker used more than --memory megabytes."""


class StopReason(StrEnum):
    INTERRUPTED = "interrupted"
    RESTART = "restart signal"
    MEMORY = "memory limit"
    EMPTY = "queue empty"
    MAX_TIME = "max time"
    MAX_JOBS = "max jobs"
    ONCE = "once"
    STORE_DOWN = "store kept failing"


EXIT_CODES: dict[StopReason, int] = {
    StopReason.INTERRUPTED: EXIT_OK,
    StopReason.RESTART: EXIT_OK,
    StopReason.MEMORY: EXIT_MEMORY,
    StopReason.EMPTY: EXIT_OK,
    StopReason.MAX_TIME: EXIT_OK,
    StopReason.MAX_JOBS: EXIT_OK,
    StopReason.ONCE: EXIT_OK,
    StopReason.STORE_DOWN: EXIT_ERROR,
}
