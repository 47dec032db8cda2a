"""Running a job in the caller's process: the `sync` connection and `dispatch_sync()`.

The same runner a worker uses, with the sync policy: the first exception fails the
job (`failed()` called) and is raised to the caller, as Laravel's sync queue does; the runtime
gives it the null failed store, since the caller holds the exception and a sync record would have
nowhere to be retried to. No timeout is armed (the soft timeout ends the process, which must
never be the caller's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qctl.bus.hooks import BatchAccess, JobHooks
from qctl.clock import SYSTEM_CLOCK
from qctl.events import EventBus
from qctl.failed.base import FailedJobStore
from qctl.jobs.resolve import Resolver
from qctl.payload.signing import Signer
from qctl.worker.failing import FailureRules
from qctl.worker.models import ModelLoader
from qctl.worker.options import WorkerOptions
from qctl.worker.runner import JobRunner
from qctl.worker.timeout import no_timeout


@dataclass
class InProcessJob:
    """A ReservedJob for a payload that never left this process: nothing to delete or release."""

    connection_name: str
    queue: str
    raw: bytes
    attempts: int = 1
    reclaimed: bool = False

    @property
    def key(self) -> str:
        return "sync"

    def delete(self) -> bool:
        return True

    def release(self, delay: float) -> bool:
        return True

    def renew(self) -> bool:
        return True


def inline_runner(
    connection_name: str,
    *,
    signer: Signer | None,
    resolver: Resolver,
    failed_store: FailedJobStore,
    events: EventBus,
    hooks: JobHooks | None = None,
    batches: BatchAccess | None = None,
    caches: Callable[[str | None], Any] | None = None,
    models: ModelLoader | None = None,
) -> JobRunner:
    options = WorkerOptions(tries=1, timeout=0)
    return JobRunner(
        connection_name,
        signer=signer,
        resolver=resolver,
        failed_store=failed_store,
        events=events,
        options=options,
        rules=FailureRules(options, SYSTEM_CLOCK, fail_at_once=True),
        timeout_guard=no_timeout,
        hooks=hooks,
        batches=batches,
        caches=caches,
        models=models,
    )


def run_inline(runner: JobRunner, queue: str, raw: bytes) -> None:
    """Run the payload now; the job's exception, if any, is raised here."""
    running = runner.process(InProcessJob(runner.connection_name, queue, raw))
    if running.exception is not None:
        raise running.exception
