"""Dispatching: pick the connection and queue, build the payload, push it (or run it now)."""

from __future__ import annotations

from collections.abc import Callable

from qctl.bus.payloads import build_envelope, delay_seconds
from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.config import Config
from qctl.connections import ConnectionManager
from qctl.errors import SerializationError
from qctl.jobs.job import Job
from qctl.jobs.resolve import module_is_within
from qctl.payload.envelope import Envelope
from qctl.payload.signing import Signer

RunInProcess = Callable[[str, str, bytes], None]


class Dispatcher:
    def __init__(
        self,
        config: Config,
        connections: ConnectionManager,
        signer: Signer | None,
        run_in_process: RunInProcess,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.config = config
        self.connections = connections
        self.signer = signer
        self.run_in_process = run_in_process
        self.clock = clock

    def dispatch(self, job: Job) -> str:
        """Push the job on its connection and queue; returns its id (the payload uuid)."""
        name = job._qctl_connection or job.connection or self.config.default
        is_sync = self.config.connection(name).driver == "sync"
        driver = self.connections.get(name)
        queue = job._qctl_queue or job.queue or driver.default_queue
        envelope = build_envelope(job, self.signer, allow_main=is_sync)
        if not is_sync:
            self.check_workers_may_run(envelope)
        driver.push(envelope.to_json(self.signer), queue, delay_seconds(job._qctl_delay, self.clock.time()))
        return envelope.uuid

    def dispatch_sync(self, job: Job) -> None:
        """Run the job in this process through the worker's path; its exception propagates."""
        envelope = build_envelope(job, self.signer, allow_main=True)
        queue = job._qctl_queue or job.queue or "default"
        self.run_in_process("sync", queue, envelope.to_json(self.signer).encode("utf-8"))

    def check_workers_may_run(self, envelope: Envelope) -> None:
        """Refuse at dispatch what every worker would refuse: code outside the `app` packages."""
        module = envelope.command_name.partition(":")[0]
        if module_is_within(module, self.config.app):
            return
        allowed = ", ".join(repr(p) for p in self.config.app) or "nothing"
        raise SerializationError(
            f"{envelope.command_name}: workers only run code from the app packages (app = [{allowed}] in "
            f"{self.config.source}); add {module.split('.')[0]!r} to `app` to allow it"
        )
