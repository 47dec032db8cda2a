"""Queue events and the listeners that observe them.

Workers emit events and never print; the `work` command renders them. A
listener that raises is logged and skipped, so user code cannot kill a worker
through an event. Listeners registered at import time of the `app` modules are
seen by every worker.

A worker with `--concurrency N` dispatches the job events (`JobProcessing`,
`JobProcessed`, `JobFailed`, …) from each slot's own thread: a listener may run in
several threads at once and must guard whatever state it keeps (qctl's own, the
worker's output and metrics, do). `WorkerNotice`, `Looping` and `WorkerStopping` come
from the slots too; the bus itself is safe to listen on and dispatch from any thread.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger("qctl.events")


@dataclass(frozen=True)
class JobEvent:
    connection_name: str
    job: Any
    """The reserved job (`.queue`, `.raw`, `.attempts`, `.payload()`), see worker.runner.RunningJob."""


@dataclass(frozen=True)
class JobProcessing(JobEvent):
    pass


@dataclass(frozen=True)
class JobProcessed(JobEvent):
    runtime: float = 0.0


@dataclass(frozen=True)
class JobReleasedAfterException(JobEvent):
    exception: BaseException | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class JobExceptionOccurred(JobEvent):
    exception: BaseException | None = None


@dataclass(frozen=True)
class JobFailed(JobEvent):
    exception: BaseException | None = None


@dataclass(frozen=True)
class JobTimedOut(JobEvent):
    pass


@dataclass(frozen=True)
class Looping:
    connection_name: str
    queue: str


@dataclass(frozen=True)
class WorkerStopping:
    status: int
    reason: str


@dataclass(frozen=True)
class WorkerNotice:
    """Something an operator should see once (connection lost, connection back, refused job)."""

    connection_name: str
    message: str
    level: int = logging.WARNING


@dataclass(frozen=True)
class QueueBusy:
    """`qctl monitor --max N`: a queue holds more than N jobs (ready, delayed and reserved)."""

    connection: str
    queue: str
    size: int


@dataclass(frozen=True)
class LongWaitDetected:
    """`qctl monitor --max-wait S`: a queue's oldest ready job has waited more than S seconds."""

    connection: str
    queue: str
    seconds: float


E = TypeVar("E")
Listener = Callable[[Any], Any]


class EventBus:
    def __init__(self) -> None:
        self._listeners: dict[type, list[Listener]] = defaultdict(list)
        self._lock = threading.Lock()
        self._wanted: dict[type, bool] = {}

    def listen(self, event_type: type[E], listener: Callable[[E], Any]) -> Callable[[E], Any]:
        with self._lock:
            self._listeners[event_type].append(listener)
            self._wanted = {}
        return listener

    def forget(self, event_type: type, listener: Listener | None = None) -> None:
        with self._lock:
            if listener is None:
                self._listeners.pop(event_type, None)
            elif listener in self._listeners.get(event_type, []):
                self._listeners[event_type].remove(listener)
            self._wanted = {}

    def has_listeners(self, event_type: type) -> bool:
        return bool(self._listeners.get(event_type))

    def wants(self, event_type: type) -> bool:
        """Whether dispatching this type would reach a listener (of it or a base): lets a hot path skip
        building events nobody hears."""
        cache = self._wanted  # listen() and forget() replace it, so a stale answer is never stored
        wanted = cache.get(event_type)
        if wanted is None:
            wanted = cache[event_type] = any(self._listeners.get(kind) for kind in event_type.__mro__)
        return wanted

    def dispatch(self, event: object, on_error: Callable[[Listener, Exception], Any] | None = None) -> list[Any]:
        """Call every listener of the event's type (and its bases); returns their results.

        A listener that raises is logged (or handed to `on_error`) and the others still run."""
        results = []
        for kind in type(event).__mro__:
            for listener in list(self._listeners.get(kind, ())):
                try:
                    results.append(listener(event))
                except Exception as exc:
                    if on_error is None:
                        log.exception("event listener %r raised on %s", listener, type(event).__name__)
                    else:
                        on_error(listener, exc)
        return results


bus = EventBus()


def listen(event_type: type[E], listener: Callable[[E], Any]) -> Callable[[E], Any]:
    return bus.listen(event_type, listener)


def dispatch(event: object) -> list[Any]:
    return bus.dispatch(event)
