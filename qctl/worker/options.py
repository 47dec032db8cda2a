"""The options a worker runs with (Laravel's queue:work defaults)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from qctl.errors import UsageError
from qctl.limits import MAX_COUNT, MAX_SECONDS, out_of_bounds

MAX_CONCURRENCY = 256
"""The most job slots one worker process takes (each may hold a connection of its own to the store)."""


@dataclass(frozen=True)
class WorkerOptions:
    name: str = "default"
    queues: tuple[str, ...] = ()
    once: bool = False
    stop_when_empty: bool = False
    max_jobs: int = 0
    max_time: float = 0
    memory: int = 128
    sleep: float = 3.0
    rest: float = 0.0
    tries: int = 1
    backoff: tuple[int, ...] = (0,)
    timeout: float = 60.0
    force: bool = False
    quiet: bool = False
    log_format: str = "text"
    concurrency: int = 1
    """Job slots in the process (`--concurrency`): threads for `def handle`, one event loop for `async def`."""

    def __post_init__(self) -> None:
        """Library callers meet the same bounds as `qctl work` (an OS timer or a BIGINT column overflows past them)."""
        for name, (high, unit) in _BOUNDS.items():
            problem = out_of_bounds(getattr(self, name), 0, high, unit)
            if problem:
                raise UsageError(f"WorkerOptions.{name}: {problem}")
        problem = out_of_bounds(self.concurrency, 1, MAX_CONCURRENCY, "")
        if problem:
            raise UsageError(f"WorkerOptions.concurrency: {problem}")
        if self.log_format not in ("text", "json"):
            raise UsageError(f"WorkerOptions.log_format: expected text or json, got {self.log_format!r}")
        for step in self.backoff:
            problem = out_of_bounds(step, 0, MAX_SECONDS, "seconds each")
            if problem:
                raise UsageError(f"WorkerOptions.backoff: {problem}")

    def backoff_for(self, attempts: int, job_backoff: list[int] | None) -> int:
        """Seconds to wait before attempt `attempts + 1`: the job's list beats the worker's; the last value repeats."""
        steps = job_backoff if job_backoff else list(self.backoff)
        if not steps:
            return 0
        return steps[min(max(attempts, 1), len(steps)) - 1]

    def to_cli_args(self) -> list[str]:
        """The `qctl work` options that recreate these (only those that differ from the defaults).

        Used wherever qctl starts workers itself: listen, supervise, supervisor:config.
        """
        default = WorkerOptions()
        args: list[str] = []
        for item in fields(self):
            value = getattr(self, item.name)
            if value == getattr(default, item.name):
                continue
            flag = cli_flag(item.name)
            if isinstance(value, bool):
                args.append(flag)  # every boolean option defaults to False
            elif isinstance(value, tuple):
                args += [flag, ",".join(str(part) for part in value)]
            else:
                args += [flag, _number(value)]
        return args


_FLAGS = {"queues": "--queue", "quiet": "--quiet"}


def cli_flag(field_name: str) -> str:
    """The `qctl work` option of a WorkerOptions field: `max_jobs` → `--max-jobs`, `queues` → `--queue`."""
    return _FLAGS.get(field_name, "--" + field_name.replace("_", "-"))
_BOUNDS = {
    "max_jobs": (MAX_COUNT, ""), "max_time": (MAX_SECONDS, "seconds"), "memory": (MAX_COUNT, ""),
    "sleep": (MAX_SECONDS, "seconds"), "rest": (MAX_SECONDS, "seconds"), "tries": (MAX_COUNT, ""),
    "timeout": (MAX_SECONDS, "seconds"),
}


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)
