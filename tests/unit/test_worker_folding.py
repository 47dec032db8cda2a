"""The worker folds a finished job's delete into its next reserve when the driver can, and
deletes it itself before it waits or stops: at every instant a job is reserved or deleted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from qctl_testjobs import Boom, Ok

from qctl.bus.payloads import build_envelope
from qctl.events import EventBus
from qctl.failed.null import NullFailedJobStore
from qctl.jobs.resolve import Resolver
from qctl.worker.options import WorkerOptions
from qctl.worker.runner import JobRunner
from qctl.worker.worker import Worker


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeJob:
    name: str
    raw: bytes
    log: list[str]
    connection_name: str = "fake"
    queue: str = "default"
    attempts: int = 1
    reclaimed: bool = False

    @property
    def key(self) -> str:
        return self.name

    def delete(self) -> bool:
        self.log.append(f"delete {self.name}")
        return True

    def release(self, delay: float) -> bool:
        self.log.append(f"release {self.name}")
        return True

    def renew(self) -> bool:
        return True


@dataclass
class FoldingFake:
    jobs: list[FakeJob]
    log: list[str] = field(default_factory=list)
    connection_name: str = "fake"
    default_queue: str = "default"
    retry_after: int | None = None

    def pop(self, queues: Sequence[str]) -> FakeJob | None:
        self.log.append("pop")
        return self.jobs.pop(0) if self.jobs else None

    def pop_after(self, finished: FakeJob | None, queues: Sequence[str]) -> FakeJob | None:
        self.log.append(f"pop_after {finished.name if finished else None}")
        return self.jobs.pop(0) if self.jobs else None

    def push(self, payload: str, queue: str, delay: float = 0) -> None: ...
    def bulk(self, items: Sequence[tuple[str, str, float]]) -> None: ...
    def size(self, queue: str) -> int:
        return len(self.jobs)

    def clear(self, queue: str) -> int:
        return 0

    def close(self) -> None: ...


def make(driver: FoldingFake, **options: object) -> Worker:
    opts = WorkerOptions(memory=0, timeout=0, **options)  # type: ignore[arg-type]
    runner = JobRunner("fake", signer=None, resolver=Resolver(("qctl_testjobs",)), failed_store=NullFailedJobStore(),
                       events=EventBus(), options=opts)
    return Worker(driver, runner, opts, EventBus(), clock=FakeClock())  # type: ignore[arg-type]


def fake_driver(*jobs: object) -> FoldingFake:
    driver = FoldingFake([])
    for n, job in enumerate(jobs):
        raw = build_envelope(job, None).to_json(None).encode()  # type: ignore[arg-type]
        driver.jobs.append(FakeJob(f"j{n}", raw, driver.log))
    return driver


def test_each_finished_job_is_deleted_by_the_next_reserve() -> None:
    driver = fake_driver(Ok(1), Ok(2), Ok(3))
    assert make(driver, stop_when_empty=True).run() == 0
    assert driver.log == ["pop", "pop_after j0", "pop_after j1", "pop_after j2"]


def test_a_failed_job_is_deleted_at_once_not_folded() -> None:
    driver = fake_driver(Boom(), Ok(2))
    make(driver, stop_when_empty=True, tries=1).run()
    assert driver.log == ["pop", "delete j0", "pop", "pop_after j1"]


def test_stopping_deletes_the_finished_job_on_the_way_out() -> None:
    driver = fake_driver(Ok(1), Ok(2))
    make(driver, max_jobs=1).run()
    assert driver.log == ["pop", "delete j0"] and len(driver.jobs) == 1


def test_resting_or_once_deletes_before_anything_else() -> None:
    driver = fake_driver(Ok(1), Ok(2))
    worker = make(driver, stop_when_empty=True, rest=5)
    worker.run()
    assert driver.log == ["pop", "delete j0", "pop", "delete j1", "pop"]
    once = fake_driver(Ok(1))
    make(once, once=True).run()
    assert once.log == ["pop", "delete j0"]
