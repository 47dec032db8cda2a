"""`qctl listen`: a worker that picks up code changes without a manual restart.

The listener is a small parent that runs `qctl work` as a child and never
imports job code itself. By default the child is long-lived and is replaced when
a watched source file changes: the old one gets SIGTERM, finishes its current
job, and a fresh one starts on the new code. With `per_job` every child runs
`qctl work --max-jobs 1` (one process per job, as Laravel's queue:listen; unlike
its `--once`, an idle child waits for work instead of being respawned every
--sleep), so no state carries over from one job to the next, at the cost of a
process start per job.

A child that exits by itself is started again (after `qctl restart`, the memory
limit or a timeout kill), unless the worker options end the worker by
themselves (--once, --stop-when-empty, --max-jobs, --max-time): then the
listener exits with the child's status. A child that cannot start (status 2, or
an error within its first seconds: typically a syntax error in code being edited)
is retried after the next change instead of in a loop.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.worker.command import terminate_with_parent
from qctl.worker.options import WorkerOptions
from qctl.worker.signals import forwarded
from qctl.worker.stop import EXIT_MEMORY, EXIT_OK, EXIT_USAGE
from qctl.worker.watch import SourceWatcher

STOP_SIGNALS: dict[int, int] = {signum: signal.SIGTERM for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)}
PASSED_ON = (signal.SIGUSR2, signal.SIGCONT)
QUICK_EXIT_SECONDS = 5.0
"""A child that fails sooner than this never got going (a syntax error in code being edited, a bad
import): the listener waits for the next change instead of restarting it in a loop."""


def could_not_start(status: int, lived: float) -> bool:
    return status == EXIT_USAGE or (status not in (EXIT_OK, EXIT_MEMORY) and lived < QUICK_EXIT_SECONDS)


def ends_by_itself(options: WorkerOptions) -> bool:
    return bool(options.once or options.stop_when_empty or options.max_jobs or options.max_time)


@dataclass(frozen=True)
class ListenPlan:
    command: tuple[str, ...]
    """The child's argv: `qctl [--config F] work [CONNECTION] [options]` (with --max-jobs 1 when per_job)."""
    finite: bool
    per_job: bool = False
    poll: float = 1.0


class Listener:
    def __init__(self, plan: ListenPlan, watcher: SourceWatcher, notice: Callable[[str], None],
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.plan = plan
        self.watcher = watcher
        self.notice = notice
        self.clock = clock
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def run(self) -> int:
        """Run children until asked to stop (or until a finite worker is done); returns the last child's status."""
        with forwarded(lambda: self.child, STOP_SIGNALS, passed_on=PASSED_ON, on_stop=self.stop):
            while True:
                started = self.clock.monotonic()
                self.child = subprocess.Popen(self.plan.command, preexec_fn=terminate_with_parent)
                status, changed = self.watch_child()
                if self.stopping:
                    return status
                if changed:
                    self.notice(f"{changed[0]} changed{_and_more(changed)}; worker restarted on the new code")
                    continue
                done = self.after_exit(status, self.clock.monotonic() - started)
                if done is not None:
                    return done

    def stop(self, signum: int) -> None:
        self.stopping = True

    def watch_child(self) -> tuple[int, list[str]]:
        """Wait for the child to exit, or replace it when a source changes: (status, changed files)."""
        assert self.child is not None
        while True:
            status = self.child.poll()
            if status is not None:
                return status, []
            changed = [] if self.stopping else self.watcher.changes()
            if changed:
                self.child.terminate()  # SIGTERM: the worker finishes its current job first
                return self.child.wait(), changed
            self.clock.sleep(self.plan.poll)

    def after_exit(self, status: int, lived: float) -> int | None:
        """What to do when the child exited by itself: a status to exit with, or None to start another."""
        if could_not_start(status, lived):
            self.notice(f"the worker could not start (status {status}, see above); waiting for a source change")
            return None if self.wait_for_change() else status
        if self.plan.per_job:
            return None
        if self.plan.finite and status == EXIT_OK:
            return status
        self.notice(f"the worker exited with status {status}; starting a new one")
        if lived < QUICK_EXIT_SECONDS:
            self.clock.sleep(QUICK_EXIT_SECONDS)
        return status if self.stopping else None

    def wait_for_change(self) -> bool:
        """True when a source changed, False when the listener was asked to stop first."""
        while not self.stopping:
            if self.watcher.changes():
                return True
            self.clock.sleep(self.plan.poll)
        return False


def _and_more(changed: list[str]) -> str:
    return f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
