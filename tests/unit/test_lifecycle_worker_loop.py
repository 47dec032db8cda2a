"""The worker loop's lifecycle rules with fakes: restart, maintenance, memory limit, heartbeat status."""

from __future__ import annotations

from qctl.events import EventBus
from qctl.worker.controls import (
    CacheControls,
    enter_maintenance,
    leave_maintenance,
    pause_queue,
    request_restart,
)
from qctl.worker.options import WorkerOptions
from qctl.worker.stop import EXIT_MEMORY, EXIT_OK
from qctl.worker.worker import Worker
from tests.support.lifecycle_fakes import (
    FakeClock,
    FakeDriver,
    FakeReserved,
    FakeRunner,
    MemoryCache,
    payload,
)


def make_worker(clock: FakeClock, cache: MemoryCache, options: WorkerOptions, jobs: int = 0,
                memory: list[float] | None = None) -> tuple[Worker, FakeDriver, FakeRunner]:
    driver = FakeDriver([payload(n) for n in range(jobs)])
    runner = FakeRunner()
    readings = memory if memory is not None else []
    worker = Worker(driver, runner, options, EventBus(), controls=CacheControls(cache, clock), clock=clock,  # type: ignore[arg-type]
                    memory_megabytes=lambda: readings.append(clock.now) or 10.0)
    return worker, driver, runner


def test_a_restart_request_stops_the_worker_after_its_current_job() -> None:
    clock, options = FakeClock(), WorkerOptions(sleep=1)
    cache = MemoryCache(clock)
    worker, driver, runner = make_worker(clock, cache, options, jobs=5)

    def restart_during_second_job(job: FakeReserved) -> None:
        clock.advance(2)  # jobs take 2 s: every check after a job is due
        if len(runner.ran) == 2:
            request_restart(cache, clock)

    runner.during = restart_during_second_job
    assert worker.run() == EXIT_OK
    assert len(runner.ran) == 2  # the second job finished, no third one started
    assert len(driver.jobs) == 3


def test_down_takes_no_jobs_force_does_and_up_resumes() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    enter_maintenance(cache, clock)
    worker, driver, runner = make_worker(clock, cache, WorkerOptions(sleep=1, max_time=30), jobs=3)
    assert worker.run() == EXIT_OK  # max_time ends it
    assert driver.pops == 0 and runner.ran == []
    assert worker.status().state == "down"

    forced, driver, runner = make_worker(clock, cache, WorkerOptions(sleep=1, force=True, stop_when_empty=True), jobs=3)
    assert forced.run() == EXIT_OK
    assert len(runner.ran) == 3

    leave_maintenance(cache)
    clock.advance(1)
    worker, driver, runner = make_worker(clock, cache, WorkerOptions(sleep=1, stop_when_empty=True), jobs=3)
    assert worker.run() == EXIT_OK
    assert len(runner.ran) == 3


def test_the_memory_limit_stops_the_worker_with_status_12_after_the_job() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    driver = FakeDriver([payload(n) for n in range(3)])
    runner = FakeRunner(during=lambda job: clock.advance(2))
    worker = Worker(driver, runner, WorkerOptions(memory=64), EventBus(), controls=CacheControls(cache, clock),  # type: ignore[arg-type]
                    clock=clock, memory_megabytes=lambda: 65.0)
    assert worker.run() == EXIT_MEMORY == 12
    assert len(runner.ran) == 1 and len(driver.jobs) == 2


def test_memory_is_read_at_most_once_a_second_in_a_fast_loop() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    readings: list[float] = []
    worker, driver, runner = make_worker(clock, cache, WorkerOptions(stop_when_empty=True), jobs=5000, memory=readings)
    runner.during = lambda job: clock.advance(0.001)  # 1,000 jobs a second for 5 seconds
    assert worker.run() == EXIT_OK
    assert len(runner.ran) == 5000
    assert 5 <= len(readings) <= 6


def test_status_reports_the_current_job_and_the_count() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    worker, driver, runner = make_worker(clock, cache, WorkerOptions(stop_when_empty=True), jobs=2)
    seen = []
    runner.during = lambda job: seen.append(worker.status())
    worker.run()
    assert [s.state for s in seen] == ["working", "working"]
    assert seen[0].job_raw == payload(0).raw and seen[0].job_started_at == clock.now
    assert [s.jobs_done for s in seen] == [0, 1]  # the job in hand is not done yet
    assert worker.status().jobs_done == 2 and worker.status().jobs_failed == worker.status().jobs_released == 0
    assert worker.status().state == "idle" and worker.status().job_raw is None
    worker.flags.paused = True
    worker.should_take_jobs()
    assert worker.status().state == "paused"


def test_a_paused_queue_is_left_out_of_every_reserve_and_all_paused_takes_nothing() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    pause_queue(cache, "fake", "high", clock)
    driver = FakeDriver([payload(n) for n in range(2)])
    controls = CacheControls(cache, clock, connection="fake", queues=("high", "default"))
    worker = Worker(driver, FakeRunner(), WorkerOptions(queues=("high", "default"), stop_when_empty=True),  # type: ignore[arg-type]
                    EventBus(), controls=controls, clock=clock, memory_megabytes=lambda: 10.0)  # not the test runner's RSS
    assert worker.run() == EXIT_OK
    assert driver.asked and set(driver.asked) == {("default",)}

    pause_queue(cache, "fake", "default", clock)
    driver = FakeDriver([payload(n) for n in range(2)])
    controls = CacheControls(cache, clock, connection="fake", queues=("high", "default"))
    worker = Worker(driver, FakeRunner(), WorkerOptions(queues=("high", "default"), sleep=1, max_time=5),  # type: ignore[arg-type]
                    EventBus(), controls=controls, clock=clock, memory_megabytes=lambda: 10.0)
    assert worker.run() == EXIT_OK
    assert driver.pops == 0
    assert worker.status().state == "queues paused"
