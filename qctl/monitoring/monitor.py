"""What `qctl monitor` does: read the size and oldest wait of the queues it is given, decide which
are over their limits, and tell the `app`'s listeners (`QueueBusy`, `LongWaitDetected`).

A queue is busy when it holds more than `max_size` jobs (ready, delayed and reserved, as
`Driver.size` counts them) and waits long when its oldest ready job has waited more than
`max_wait` seconds. Reading is read-only: a queue whose table or keys do not exist is empty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qctl.db.reading import reading_only
from qctl.drivers.base import InspectsQueues, QueueSizes
from qctl.drivers.names import check_queue_name
from qctl.errors import DriverError, UsageError
from qctl.events import EventBus, LongWaitDetected, QueueBusy
from qctl.monitoring.status import INSPECTABLE

if TYPE_CHECKING:
    from qctl.config import Config
    from qctl.runtime import Runtime

ListenerError = Callable[[Any, object, Exception], None]
"""(listener, event, exception): how a listener that raised is reported."""


@dataclass(frozen=True)
class Target:
    connection: str
    queue: str


@dataclass(frozen=True)
class Limits:
    max_size: int
    max_wait: float | None = None


@dataclass(frozen=True)
class Reading:
    target: Target
    sizes: QueueSizes | None
    """None when the store could not be read (`problem` says why)."""
    limits: Limits
    problem: str | None = None

    @property
    def busy(self) -> bool:
        return self.sizes is not None and self.sizes.size > self.limits.max_size

    @property
    def waits_long(self) -> bool:
        wait, limit = (self.sizes.oldest_wait if self.sizes else None), self.limits.max_wait
        return wait is not None and limit is not None and wait > limit

    @property
    def status(self) -> str:
        if self.problem is not None:
            return "ERROR"
        return "ALERT" if self.busy or self.waits_long else "OK"


def parse_targets(text: str, config: Config) -> list[Target]:
    """`redis:default,database:emails`; a bare `QUEUE` is on the default connection (as in Laravel)."""
    targets = []
    for item in text.split(","):
        connection, colon, queue = item.partition(":")
        if not colon:
            connection, queue = config.default, connection
        if not connection.strip() or not queue.strip() or connection != connection.strip():
            raise UsageError(f"{item!r}: expected CONNECTION:QUEUE[,CONNECTION:QUEUE…], like redis:default,database:emails")
        driver = config.connection(connection).driver  # an unknown connection: ConfigError, exit 2
        if driver not in INSPECTABLE:
            raise UsageError(f"{item!r}: a {driver} connection holds no queue to monitor")
        targets.append(Target(connection, check_queue_name(queue, driver, f"{connection}:")))
    return list(dict.fromkeys(targets))


def read(runtime: Runtime, targets: Sequence[Target], limits: Limits) -> list[Reading]:
    readings = []
    with reading_only():
        for target in targets:
            driver = runtime.connections.get(target.connection)
            assert isinstance(driver, InspectsQueues), f"{target.connection}: its driver cannot count jobs by state"
            try:
                readings.append(Reading(target, driver.sizes(target.queue), limits))
            except DriverError as exc:
                readings.append(Reading(target, None, limits, problem=str(exc)))
    return readings


def alert(events: EventBus, readings: Sequence[Reading], on_error: ListenerError) -> int:
    """Dispatch QueueBusy and LongWaitDetected for the readings over their limits; how many events."""
    fired = 0
    for reading in readings:
        for event in _events_of(reading):
            events.dispatch(event, on_error=_reporter(on_error, event))
            fired += 1
    return fired


def _reporter(on_error: ListenerError, event: object) -> Callable[[Any, Exception], None]:
    def report(listener: Any, exc: Exception) -> None:
        on_error(listener, event, exc)

    return report


def _events_of(reading: Reading) -> list[object]:
    target, sizes = reading.target, reading.sizes
    found: list[object] = []
    if sizes is not None and reading.busy:
        found.append(QueueBusy(target.connection, target.queue, sizes.size))
    if sizes is not None and sizes.oldest_wait is not None and reading.waits_long:
        found.append(LongWaitDetected(target.connection, target.queue, round(sizes.oldest_wait, 1)))
    return found


def reading_row(reading: Reading) -> dict[str, Any]:
    sizes = reading.sizes
    return {
        "connection": reading.target.connection, "queue": reading.target.queue,
        "size": sizes.size if sizes else None, "ready": sizes.ready if sizes else None,
        "delayed": sizes.delayed if sizes else None, "reserved": sizes.reserved if sizes else None,
        "oldest_wait_seconds": round(sizes.oldest_wait, 1) if sizes and sizes.oldest_wait is not None else None,
        "max": reading.limits.max_size, "max_wait": reading.limits.max_wait,
        "status": reading.status, "busy": reading.busy, "long_wait": reading.waits_long, "error": reading.problem,
    }
