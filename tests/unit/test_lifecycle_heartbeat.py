"""Heartbeat records: what is written, how long it lives, and that a stopping worker withdraws it."""

from __future__ import annotations

import json
import os
import threading

from qctl.cache import keys
from qctl.worker.heartbeat import (
    CacheHeartbeat,
    ProcessUsage,
    SlotJob,
    WorkerIdentity,
    WorkerRecord,
    WorkerStatus,
    describe_job,
    make_record,
    time_to_live,
)
from qctl.worker.registry import read_records
from tests.support.lifecycle_fakes import FakeClock, MemoryCache, payload

IDENTITY = WorkerIdentity("emails", 4242, "web-1", "redis", ("high", "default"), 900.0, 899.5)


def test_a_record_round_trips_through_json_and_names_the_current_job() -> None:
    status = WorkerStatus("working", payload(7).raw, "high", 990.0, 12)
    record = make_record(IDENTITY, status, now=1000.0)
    assert record.job_id == "job-7" and record.job_class == "tests.Fake" and record.job_queue == "high"
    assert record.queues == ("high", "default") and record.jobs_done == 12 and record.heartbeat_at == 1000.0
    assert WorkerRecord.from_json(record.to_json()) == record
    assert WorkerRecord.from_json("not json") is None
    assert WorkerRecord.from_json(json.dumps({"name": "x"})) is None


def test_a_worker_with_several_slots_lists_every_job_in_flight_and_an_older_record_reads_as_one_slot() -> None:
    jobs = (SlotJob(payload(1).raw, "high", 980.0), SlotJob(payload(2).raw, "default", 990.0))
    status = WorkerStatus("working", jobs[0].raw, "high", 980.0, 3, jobs=jobs, concurrency=8)
    record = make_record(IDENTITY, status, now=1000.0)
    assert record.concurrency == 8 and record.job_id == "job-1"  # the oldest job, as a single slot shows it
    assert record.in_flight == [
        {"job_id": "job-1", "job_class": "tests.Fake", "job_queue": "high", "job_started_at": 980.0},
        {"job_id": "job-2", "job_class": "tests.Fake", "job_queue": "default", "job_started_at": 990.0},
    ]
    assert WorkerRecord.from_json(record.to_json()) == record
    older = json.loads(record.to_json())
    del older["concurrency"], older["in_flight"]
    read = WorkerRecord.from_json(json.dumps(older))
    assert read is not None and read.concurrency == 1 and read.in_flight == []


def test_describe_job_survives_garbage() -> None:
    assert describe_job(b"\xff not json") == (None, "(unreadable payload)")
    assert describe_job(b"[1, 2]") == (None, "(unreadable payload)")
    assert describe_job(b'{"uuid": "u", "data": {"commandName": "a.B"}}') == ("u", "a.B")


def test_beats_expire_after_a_few_missed_ones_and_are_withdrawn_on_exit() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    heartbeat = CacheHeartbeat(cache, IDENTITY, every=2.0, clock=clock)
    heartbeat.beat(WorkerStatus("idle"))
    assert [r.pid for r in read_records(cache)] == [4242]
    clock.advance(time_to_live(2.0) - 0.1)
    assert read_records(cache) != []
    clock.advance(0.2)
    assert read_records(cache) == []  # a worker killed with -9 disappears by itself

    beaten = threading.Event()
    with heartbeat.beating(lambda: beaten.set() or WorkerStatus("idle")):  # type: ignore[func-returns-value]
        assert beaten.wait(5)
        assert keys.worker("web-1", 4242) in cache.values
    assert read_records(cache) == []  # withdrawn at once when the worker stops


def test_a_failing_cache_does_not_stop_the_heartbeat() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    heartbeat = CacheHeartbeat(cache, IDENTITY, every=2.0, clock=clock)
    cache.down = True
    heartbeat.beat(WorkerStatus("idle"))
    assert heartbeat.failing
    cache.down = False
    heartbeat.beat(WorkerStatus("idle"))
    assert not heartbeat.failing and len(read_records(cache)) == 1


def test_a_record_counts_outcomes_apart_carries_the_process_usage_and_reads_an_older_record() -> None:
    status = WorkerStatus("idle", jobs_done=7, jobs_failed=2, jobs_released=3)
    record = make_record(IDENTITY, status, now=1000.0, usage=ProcessUsage(48.5, 12.0))
    assert (record.jobs_done, record.jobs_failed, record.jobs_released) == (7, 2, 3)
    assert (record.rss_mb, record.cpu_percent) == (48.5, 12.0)
    assert WorkerRecord.from_json(record.to_json()) == record
    older = json.loads(record.to_json())
    for added in ("jobs_failed", "jobs_released", "rss_mb", "cpu_percent"):
        del older[added]
    read = WorkerRecord.from_json(json.dumps(older))
    assert read is not None and read.jobs_failed == 0 and read.rss_mb is None


def test_a_beat_measures_this_process() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    here = WorkerIdentity("me", os.getpid(), "web-1", "redis", ("default",), 900.0, 899.5)
    CacheHeartbeat(cache, here, clock=clock).beat(WorkerStatus("idle"))
    [record] = read_records(cache)
    assert record.rss_mb is not None and record.rss_mb > 5 and record.cpu_percent is not None


def test_the_process_start_time_is_the_one_psutil_reports() -> None:
    """`qctl workers` compares it with psutil's create_time() to tell a reused pid from the worker."""
    import subprocess
    import sys

    import psutil

    from qctl.worker.heartbeat import process_start_time

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        for pid in (os.getpid(), child.pid):
            assert abs(process_start_time(pid) - psutil.Process(pid).create_time()) < 0.05
    finally:
        child.communicate(b"")
