"""Failing a job for good, in one place: record, bookkeeping, remove, then tell the job and listeners.

The order is the guarantee. The failed record is written first, then the settle
hooks do their durable bookkeeping (batch counters, chain catch callbacks) while the
job is still on its queue, and only then does the job leave it: a worker killed at
any point before the removal gets the job back, and every step is idempotent on the
job's uuid. The job's own `failed()` hook and the `JobFailed` event come last, once.
If the record or the bookkeeping cannot be written the job is released instead: it
stays queued (never lost) and fails again once the store is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qctl.bus.hooks import JobHooks
from qctl.crashpoints import crash_point
from qctl.errors import PayloadError, StoreUnavailableError
from qctl.events import EventBus, JobFailed
from qctl.failed.base import FailedJobStore
from qctl.jobs.resolve import Resolver
from qctl.payload.envelope import uuid_of
from qctl.payload.signing import Signer
from qctl.worker.failing import FailureRules, describe_exception
from qctl.worker.instantiate import instantiate

if TYPE_CHECKING:
    from qctl.worker.runner import RunningJob

log = logging.getLogger("qctl.worker")
STORE_DOWN_RETRY_SECONDS = 5


@dataclass
class JobFailer:
    connection_name: str
    failed_store: FailedJobStore
    rules: FailureRules
    resolver: Resolver
    signer: Signer | None
    events: EventBus
    hooks: JobHooks
    notice: Callable[[str], None]

    def fail(self, running: RunningJob, exc: BaseException) -> None:
        if running.failed or running.deleted:
            return
        running.exception = running.exception or exc
        try:
            self.failed_store.log(
                running.connection_name, running.queue, running.raw, describe_exception(exc), self.record_uuid(running)
            )
            self.after_failure_hooks(running, exc)
        except StoreUnavailableError as store_exc:
            self.notice(f"{store_exc}; job {running.job_id} stays queued until its failure can be recorded")
            running.release(STORE_DOWN_RETRY_SECONDS)
            return
        running.failed = True
        crash_point("after_failed_insert_before_delete")
        running.reserved.delete()
        running.deleted = True
        self.rules.forget_counts(running)
        self.call_failed_hook(running, exc)
        self.events.dispatch(JobFailed(self.connection_name, running, exc))

    def after_failure_hooks(self, running: RunningJob, exc: BaseException) -> None:
        """The settle hooks' bookkeeping; one that breaks on what the payload holds (a forged chain or
        lock field) is reported in one line and the failure stands: nothing a payload says may keep
        its job from settling. A store that is down still puts the job back (StoreUnavailableError)."""
        try:
            self.hooks.after_failure(running, exc)
        except StoreUnavailableError:
            raise
        except Exception as hook_exc:
            first = (str(hook_exc).splitlines() or [""])[0]
            self.notice(f"job {running.job_id}: bookkeeping after its failure broke ({type(hook_exc).__name__}: {first})")

    def record_uuid(self, running: RunningJob) -> str:
        """The uuid to record the failure under: the payload's own, unless the payload was refused or
        another payload's failure already holds it (a forgery must never take over a real job's record,
        nor make it be dropped): then the uuid derived from the stored bytes."""
        uuid = running.record_uuid
        if uuid != running.job_id:
            return uuid
        existing = self.failed_store.find(uuid)
        if existing is not None and existing.payload != running.raw:
            return uuid_of(running.raw, running.fallback_key)
        return uuid

    def call_failed_hook(self, running: RunningJob, exc: BaseException) -> None:
        """`failed(exc)` on a fresh instance; a hook that raises is logged, the failure stays recorded.

        The instance sees the settled job (job_id, attempts); release/fail/delete are no-ops by then.
        """
        if running.envelope is None or isinstance(exc, PayloadError):
            return
        try:
            fresh = instantiate(running.envelope, self.resolver, self.signer, running.runner.fetcher(running))
            fresh._qctl_ctx = running
            fresh.failed(exc)
        except (Exception, SystemExit, KeyboardInterrupt, GeneratorExit):  # the job's, not the worker's
            log.exception("the failed() hook of %s raised", running.display_name)
