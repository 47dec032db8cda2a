"""The job runner and its attempt rules, in process, against fakes (no servers, no sleeping)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import qctl_testjobs as jobs

from qctl.bus.payloads import build_envelope
from qctl.clock import SYSTEM_CLOCK
from qctl.errors import StoreUnavailableError
from qctl.events import EventBus, JobFailed, JobProcessed
from qctl.jobs.job import Job
from qctl.jobs.resolve import Resolver
from qctl.worker.failing import FailureRules
from qctl.worker.options import WorkerOptions
from qctl.worker.runner import JobRunner, RunningJob
from qctl.worker.timeout import no_timeout


@dataclass
class FakeReserved:
    raw: bytes
    attempts: int = 1
    reclaimed: bool = False
    connection_name: str = "main"
    queue: str = "default"
    deleted: bool = False
    released: list[float] = field(default_factory=list)

    @property
    def key(self) -> str:
        return "1"

    def delete(self) -> bool:
        self.deleted = True
        return True

    def release(self, delay: float) -> bool:
        self.released.append(delay)
        return True

    def renew(self) -> bool:
        return True


@dataclass
class FakeFailedStore:
    records: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    down: bool = False

    def log(self, connection: str, queue: str, payload: bytes, exception: str, uuid: str) -> str:
        if self.down:
            raise StoreUnavailableError("failed-job store: down")
        self.records.setdefault(uuid, (queue, payload, exception))
        return uuid

    def find(self, uuid: str) -> object | None:
        if self.down:
            raise StoreUnavailableError("failed-job store: down")
        found = self.records.get(uuid)
        return None if found is None else SimpleNamespace(uuid=uuid, payload=found[1])


@dataclass
class FakeCounters:
    exceptions: dict[str, int] = field(default_factory=dict)
    stall_counts: dict[str, int] = field(default_factory=dict)
    hard_timeouts: set[str] = field(default_factory=set)

    def add_exception(self, uuid: str) -> int:
        self.exceptions[uuid] = self.exceptions.get(uuid, 0) + 1
        return self.exceptions[uuid]

    def add_stall(self, uuid: str) -> int:
        self.stall_counts[uuid] = self.stall_counts.get(uuid, 0) + 1
        return self.stall_counts[uuid]

    def stalls(self, uuid: str) -> int:
        return self.stall_counts.get(uuid, 0)

    def note_hard_timeout(self, uuid: str) -> None:
        self.hard_timeouts.add(uuid)

    def took_hard_timeout(self, uuid: str) -> bool:
        found = uuid in self.hard_timeouts
        self.hard_timeouts.discard(uuid)
        return found

    def forget(self, uuid: str) -> None:
        self.exceptions.pop(uuid, None)
        self.stall_counts.pop(uuid, None)


@dataclass
class Harness:
    store: FakeFailedStore
    counters: FakeCounters
    events: EventBus
    options: WorkerOptions = field(default_factory=WorkerOptions)
    max_stalls: int = 3

    def runner(self) -> JobRunner:
        rules = FailureRules(self.options, SYSTEM_CLOCK, counters=self.counters, max_stalls=self.max_stalls)
        return JobRunner(
            "main", signer=None, resolver=Resolver(("qctl_testjobs",)), failed_store=self.store,  # type: ignore[arg-type]
            events=self.events, options=self.options, rules=rules, timeout_guard=no_timeout,
        )

    def run(self, raw: bytes | Job, attempts: int = 1, reclaimed: bool = False) -> tuple[RunningJob, FakeReserved]:
        if isinstance(raw, Job):
            raw = build_envelope(raw, None).to_json(None).encode()
        reserved = FakeReserved(raw, attempts=attempts, reclaimed=reclaimed)
        return self.runner().process(reserved), reserved


@pytest.fixture
def harness() -> Harness:
    return Harness(FakeFailedStore(), FakeCounters(), EventBus())


def ledger_phases(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def test_a_job_that_finishes_is_deleted(harness: Harness, tmp_path: Path) -> None:
    running, reserved = harness.run(jobs.Ok(1, str(tmp_path / "l")))
    assert reserved.deleted and not reserved.released and not harness.store.records
    assert ledger_phases(tmp_path / "l") == ["start", "end"]


@pytest.mark.parametrize(("attempts", "expected"), [(1, 1), (2, 5), (3, 10), (7, 10)])
def test_backoff_list_from_the_worker_last_value_repeats(harness: Harness, attempts: int, expected: int) -> None:
    harness.options = WorkerOptions(tries=0, backoff=(1, 5, 10))
    _, reserved = harness.run(jobs.Boom(), attempts=attempts)
    assert reserved.released == [expected] and not reserved.deleted


def test_job_backoff_beats_the_worker_backoff(harness: Harness) -> None:
    harness.options = WorkerOptions(tries=0, backoff=(7,))
    _, reserved = harness.run(jobs.BoomUntil(window=60))
    assert reserved.released == [1]


def test_last_try_fails_with_the_jobs_own_exception(harness: Harness) -> None:
    running, reserved = harness.run(jobs.BoomThreeTries(), attempts=3)
    assert reserved.deleted and not reserved.released
    (queue, _, exception), = harness.store.records.values()
    assert exception.startswith("RuntimeError: boom on attempt 3")


def test_job_tries_beat_the_worker_tries(harness: Harness) -> None:
    harness.options = WorkerOptions(tries=1)
    _, reserved = harness.run(jobs.BoomThreeTries(), attempts=2)
    assert reserved.released == [0] and not harness.store.records
    harness.options = WorkerOptions(tries=5)
    _, reserved = harness.run(jobs.BoomMaxExceptions(), attempts=50)  # tries = 0 on the job: unlimited
    assert reserved.released == [0]


def test_reserved_more_times_than_tries_fails_without_running(harness: Harness, tmp_path: Path) -> None:
    _, reserved = harness.run(jobs.BoomThreeTries(ledger=str(tmp_path / "l")), attempts=4)
    assert reserved.deleted and ledger_phases(tmp_path / "l") == []
    (_, _, exception), = harness.store.records.values()
    assert "attempted too many times or run too long" in exception.splitlines()[0]
    assert exception.startswith("MaxAttemptsExceededError")


def test_max_exceptions_counts_per_uuid_and_forgets_on_failure(harness: Harness) -> None:
    raw = build_envelope(jobs.BoomMaxExceptions(), None).to_json(None).encode()
    uuid = json.loads(raw)["uuid"]
    for attempt in (1, 2):
        _, reserved = harness.run(raw, attempts=attempt)
        assert reserved.released == [0]
    assert harness.counters.exceptions[uuid] == 2
    _, reserved = harness.run(raw, attempts=3)
    assert reserved.deleted and uuid in harness.store.records
    assert uuid not in harness.counters.exceptions


def test_stalls_beyond_max_stalls_fail_even_with_unlimited_tries(harness: Harness, tmp_path: Path) -> None:
    raw = build_envelope(jobs.SleepUnlimited(0, str(tmp_path / "l")), None).to_json(None).encode()
    for attempt in (2, 3, 4):
        _, reserved = harness.run(raw, attempts=attempt, reclaimed=True)
        assert reserved.deleted and not harness.store.records
    _, reserved = harness.run(raw, attempts=5, reclaimed=True)
    (_, _, exception), = harness.store.records.values()
    assert "attempted too many times or run too long" in exception and "max_stalls = 3" in exception
    assert ledger_phases(tmp_path / "l") == ["start", "end"] * 3


def test_a_stall_does_not_use_up_a_try(harness: Harness, tmp_path: Path) -> None:
    """tries = 1 and its worker was killed: the redelivery runs (a deploy must not fail jobs)."""
    harness.options = WorkerOptions(tries=1)
    raw = build_envelope(jobs.Ok(1, str(tmp_path / "l")), None).to_json(None).encode()
    _, reserved = harness.run(raw, attempts=2, reclaimed=True)
    assert reserved.deleted and not harness.store.records
    assert ledger_phases(tmp_path / "l") == ["start", "end"]


def test_tries_are_reservations_minus_stalls(harness: Harness, tmp_path: Path) -> None:
    """Reserved 3 times with one stall: 2 tries used; tries = 2 means the failure of the third is final."""
    harness.options = WorkerOptions(tries=2)
    raw = build_envelope(jobs.Boom(), None).to_json(None).encode()
    uuid = json.loads(raw)["uuid"]
    _, reserved = harness.run(raw, attempts=1)
    assert reserved.released == [0]  # try 1 of 2
    _, reserved = harness.run(raw, attempts=2, reclaimed=True)  # its worker died: a stall, not a try
    assert reserved.released == [0] and harness.counters.stall_counts[uuid] == 1
    _, reserved = harness.run(raw, attempts=3)
    assert reserved.deleted
    (_, _, exception), = harness.store.records.values()
    assert exception.startswith("RuntimeError")  # its own exception: try 2 of 2 failed


def test_too_many_reservations_names_the_stalls_it_did_not_count(harness: Harness) -> None:
    harness.options = WorkerOptions(tries=1)
    raw = build_envelope(jobs.Ok(1), None).to_json(None).encode()
    uuid = json.loads(raw)["uuid"]
    harness.counters.stall_counts[uuid] = 1
    _, reserved = harness.run(raw, attempts=3)  # 3 reservations, 1 stall: 2 tries > 1
    (_, _, exception), = harness.store.records.values()
    assert "reserved 3 times, 1 of them ended by a worker that stopped (not counted as tries), 2 tries used" in exception


@pytest.mark.parametrize(("tries", "fails"), [(1, True), (2, False)])
def test_a_reclaim_after_a_hard_timeout_is_a_timed_out_try_not_a_stall(harness: Harness, tmp_path: Path, tries: int, fails: bool) -> None:
    harness.options = WorkerOptions(tries=tries, timeout=5)
    raw = build_envelope(jobs.Ok(1, str(tmp_path / "l")), None).to_json(None).encode()
    uuid = json.loads(raw)["uuid"]
    harness.counters.note_hard_timeout(uuid)
    _, reserved = harness.run(raw, attempts=2, reclaimed=True)
    assert reserved.deleted and harness.counters.stall_counts == {} and not harness.counters.hard_timeouts
    if fails:
        (_, _, exception), = harness.store.records.values()
        assert exception == "JobTimedOutError: qctl_testjobs.Ok has timed out after 5s (stopped by its hard timeout: stuck in C code)"
        assert ledger_phases(tmp_path / "l") == []
    else:
        assert not harness.store.records and ledger_phases(tmp_path / "l") == ["start", "end"]


def test_a_normal_reservation_counts_no_stall(harness: Harness) -> None:
    harness.run(jobs.SleepUnlimited(0), attempts=9)
    assert harness.counters.stall_counts == {}


def test_max_stalls_zero_means_no_stall_limit(harness: Harness) -> None:
    harness.max_stalls = 0
    raw = build_envelope(jobs.SleepUnlimited(0), None).to_json(None).encode()
    for attempt in range(2, 8):
        _, reserved = harness.run(raw, attempts=attempt, reclaimed=True)
        assert reserved.deleted and not harness.store.records


def test_retry_until_replaces_tries(harness: Harness) -> None:
    _, reserved = harness.run(jobs.BoomUntil(window=60), attempts=30)
    assert reserved.released == [1] and not harness.store.records
    _, reserved = harness.run(jobs.BoomUntil(window=-5), attempts=1)
    (_, _, exception), = harness.store.records.values()
    assert "retry_until deadline has passed" in exception


def test_failed_hook_runs_on_a_fresh_instance_and_may_raise(harness: Harness, tmp_path: Path) -> None:
    ledger = tmp_path / "l"
    failures: list[JobFailed] = []
    harness.events.listen(JobFailed, failures.append)
    _, reserved = harness.run(jobs.WithFailedHook(str(ledger), hook_raises=True))
    assert reserved.deleted and len(harness.store.records) == 1
    assert ledger_phases(ledger) == ["start", "failed"]
    assert len(failures) == 1 and isinstance(failures[0].exception, RuntimeError)
    assert failures[0].job.payload()["displayName"].endswith("WithFailedHook")


def test_self_fail_records_the_message(harness: Harness) -> None:
    processed: list[JobProcessed] = []
    harness.events.listen(JobProcessed, processed.append)
    _, reserved = harness.run(jobs.FailsItself("no luck"))
    (_, _, exception), = harness.store.records.values()
    assert exception.splitlines()[0] == "ManuallyFailedError: no luck"
    assert reserved.deleted and not reserved.released and not processed


def test_self_delete_then_raise_is_neither_retried_nor_failed(harness: Harness) -> None:
    _, reserved = harness.run(jobs.DeletesItself())
    assert reserved.deleted and not reserved.released and not harness.store.records


def test_release_then_raise_on_the_last_try_stays_released(harness: Harness) -> None:
    _, reserved = harness.run(jobs.ReleaseThenRaise(), attempts=1)
    assert reserved.released == [7] and not reserved.deleted and not harness.store.records


def test_timeout_after_the_job_released_itself_changes_nothing(harness: Harness) -> None:
    runner = harness.runner()
    reserved = FakeReserved(build_envelope(jobs.SleepTimesOut(0), None).to_json(None).encode(), attempts=3)
    running = RunningJob(reserved, runner)
    assert runner.is_runnable(running)
    running.release(4)
    runner.timed_out(running)
    assert reserved.released == [4] and not reserved.deleted and not harness.store.records


def test_failed_store_down_keeps_the_job_queued(harness: Harness) -> None:
    harness.store.down = True
    running, reserved = harness.run(jobs.BoomThreeTries(), attempts=3)
    assert not reserved.deleted and reserved.released == [5] and not running.failed
    harness.store.down = False
    _, reserved = harness.run(reserved.raw, attempts=4)
    assert reserved.deleted and len(harness.store.records) == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json {{{", "payload is not valid JSON"),
        (b"", "payload is not valid JSON"),
        (b"[]", "payload is not a JSON object"),
        (b"\xff\xfe", "payload is not valid UTF-8"),
        (b'{"uuid":"x"}', "payload is missing field 'data'"),
        (b'{"uuid":"00000000-0000-4000-8000-000000000002","job":"j","data":{"commandName":"qctl_testjobs:Nope","command":{}}}', "unknown job class"),
        (b'{"uuid":"00000000-0000-4000-8000-000000000003","job":"j","data":{"commandName":"os:system","command":{}}}', "outside the app packages"),
    ],
)
def test_poison_fails_on_first_reservation_with_original_bytes(harness: Harness, raw: bytes, reason: str) -> None:
    _, reserved = harness.run(raw)
    assert reserved.deleted and not reserved.released
    (_, payload, exception), = harness.store.records.values()
    assert payload == raw and reason in exception and "\n" not in exception


def test_bad_typed_value_names_the_attribute(harness: Harness) -> None:
    body = json.loads(build_envelope(jobs.Ok(1), None).to_json(None))
    body["data"]["command"]["n"] = {"__qctl__": "datetime", "v": "not a date"}
    raw = json.dumps(body).encode()
    _, reserved = harness.run(raw)
    (_, payload, exception), = harness.store.records.values()
    assert payload == raw and "Ok.n" in exception and reserved.deleted


def test_timeout_releases_for_the_next_attempt(harness: Harness) -> None:
    runner = harness.runner()
    running = runner.process(FakeReserved(build_envelope(jobs.SleepTimesOut(0), None).to_json(None).encode()))
    reserved = FakeReserved(running.raw, attempts=1)
    timed = RunningJob(reserved, runner, envelope=running.envelope)
    runner.timed_out(timed)
    assert reserved.released == [0] and not harness.store.records


def test_timeout_on_the_last_attempt_or_fail_on_timeout_fails(harness: Harness) -> None:
    runner = harness.runner()
    for job, attempts in ((jobs.SleepTimesOut(0), 3), (jobs.SleepFailsOnTimeout(0), 1)):
        raw = build_envelope(job, None).to_json(None).encode()
        reserved = FakeReserved(raw, attempts=attempts)
        running = RunningJob(reserved, runner)
        assert runner.is_runnable(running)
        runner.timed_out(running)
        assert reserved.deleted and not reserved.released
    assert [e.splitlines()[0] for _, _, e in harness.store.records.values()] == [
        "JobTimedOutError: qctl_testjobs.SleepTimesOut has timed out after 1s",
        "JobTimedOutError: qctl_testjobs.SleepFailsOnTimeout has timed out after 1s",
    ]


def test_dispatch_sync_never_arms_the_process_timeout() -> None:
    from qctl.config import Config, StoreConfig, built_in_connections
    from qctl.runtime import Runtime

    config = Config(connections=built_in_connections(), failed=StoreConfig("null", "", ""))
    runtime = Runtime(config, events=EventBus())
    runtime.run_in_process("sync", "default", build_envelope(jobs.SleepTimesOut(1.5), None, allow_main=True).to_json(None).encode())


def test_exception_text_is_made_storable() -> None:
    from qctl.failed.base import clean_text

    text = clean_text("bad \udcff \x00 é")
    text.encode("utf-8")
    assert "\x00" not in text and "é" in text


def test_cli_backoff_list_parses_and_refuses_nonsense() -> None:
    from qctl.cli.options import parse_backoff
    from qctl.errors import UsageError

    assert parse_backoff("1,5,10") == (1, 5, 10) and parse_backoff("3") == (3,)
    for bad in ("1,x", "-1", ""):
        with pytest.raises(UsageError):
            parse_backoff(bad)
