"""Job middleware end to end on every queue driver, its cache store on the same server, worked off in this process."""

from __future__ import annotations

from pathlib import Path

import pytest
from qctl_testjobs import guarded

from qctl.cache import keys
from qctl.middleware import (
    Limit,
    MiddlewareError,
    RateLimiter,
    Skip,
    ThrottlesExceptions,
    WithoutOverlapping,
)
from tests.support.flows import current, drain, flow_ledger, lines, tags
from tests.support.processes import run_qctl, wait_for
from tests.support.workers import failed_records, queue_size

pytestmark = pytest.mark.usefixtures("worker_slots")  # in-process drains with one slot and with eight

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]


@pytest.fixture(params=KINDS)
def runtime(request: pytest.FixtureRequest, setup_factory, runtime_factory):  # type: ignore[no-untyped-def]
    return runtime_factory(setup_factory(request.param))


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with flow_ledger(tmp_path, monkeypatch) as path:
        yield path


def dispatch(runtime, *jobs):  # type: ignore[no-untyped-def]
    with current(runtime):
        return [job.dispatch() for job in jobs]


def errors(runtime) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(record.error_line for record in failed_records(runtime).values())


def test_rate_limited_counts_per_key_and_releases_or_deletes_the_rest(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    dispatch(runtime, *(guarded.PerUser(f"a{n}", "ann", release=False) for n in range(3)), guarded.PerUser("b0", "bob", release=False))
    drain(runtime)
    assert sorted(tags(ledger)) == ["a0", "a1", "b0"]  # two a minute per user; the third was deleted
    assert queue_size(runtime) == 0 and failed_records(runtime) == {}
    dispatch(runtime, guarded.PerUser("a3", "ann"))
    drain(runtime)
    assert "a3" not in tags(ledger)
    assert queue_size(runtime) == 1  # released until ann's window frees up, a minute from now
    hit = runtime.cache.hit(keys.limiter("qctl-test-two", "ann", 2, 60.0), 2, 60.0)
    assert not hit.allowed and 50 < hit.retry_after <= 60 * 1.05 + 0.1  # the window, plus at most one of its 20 buckets


def test_a_limiter_that_says_none_runs_every_job(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    dispatch(runtime, *(guarded.Unlimited(f"u{n}") for n in range(5)))
    drain(runtime)
    assert sorted(tags(ledger)) == [f"u{n}" for n in range(5)]


def test_bad_limiters_fail_the_job_with_one_clear_line(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    dispatch(runtime, guarded.UnknownLimiter("x"), guarded.BadLimit("y"), guarded.NotMiddleware("z"))
    drain(runtime)
    assert tags(ledger, "start") == []
    found = errors(runtime)
    assert any("no rate limiter named 'qctl-test-nobody-registered-this'" in e for e in found), found
    assert any("Limit.per_minute(0)" in e and ">= 1" in e for e in found), found
    assert any("is not a middleware: it has no handle(job, next) method" in e for e in found), found


def test_without_overlapping_waits_for_the_holder_and_always_lets_go(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    key = keys.overlap("qctl_testjobs.guarded.Exclusive", "k")
    assert runtime.cache.acquire(key, "somebody-else", 30)
    dispatch(runtime, guarded.Exclusive("held"), guarded.Exclusive("dropped", release=False))
    drain(runtime, tries=0)
    assert tags(ledger, "start") == []
    assert queue_size(runtime) == 1  # "held" is back on its queue; "dropped" was deleted
    assert runtime.cache.force_release(key)
    wait_for(lambda: drain(runtime, tries=0) is not None and tags(ledger) == ["held"], 5, 0.05, "the released job to run")
    assert runtime.cache.owner(key) is None  # released after the run


def test_a_shared_overlap_key_spans_job_classes(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    assert runtime.cache.acquire(keys.overlap(None, "s"), "somebody-else", 30)
    dispatch(runtime, guarded.SharedExclusive("shared", key="s"), guarded.Exclusive("own", key="s"))
    drain(runtime, tries=0)
    assert tags(ledger) == ["own"]  # the unshared lock is per class: not blocked


def test_throttles_exceptions_holds_a_job_back_after_the_third(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    """U-06: three exceptions within the decay run the job three times; then it waits the decay out."""
    dispatch(runtime, guarded.Flaky("f"))
    drain(runtime)
    assert len(lines(ledger, "start")) == 3
    assert queue_size(runtime) == 1 and failed_records(runtime) == {}  # released, not failed


def test_throttled_exceptions_only_when_asked_and_failing_when_told(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    dispatch(runtime, guarded.FlakyThenFine("conn", failing=[1]), guarded.FlakyThenFine("perm", failing=[1], kind="permission"))
    drain(runtime)
    assert tags(ledger) == ["conn"]  # swallowed, released, ran again
    assert any("PermissionError: perm attempt 1" in e for e in errors(runtime))  # fail_when: at once
    assert runtime.cache.hits(keys.throttle("ftf-conn"), 30) == 0  # the success cleared the count


def test_an_exception_the_throttle_does_not_want_takes_the_usual_road(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    dispatch(runtime, guarded.FlakyOnce("value", failing=[1], kind="value"))
    drain(runtime)
    assert any("ValueError: value attempt 1" in e for e in errors(runtime))
    assert runtime.cache.hits(keys.throttle("ftf-value"), 30) == 0


def test_skip_when_and_unless(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    dispatch(runtime, guarded.Skippable("gone", skip=True), guarded.Skippable("runs", skip=False),
             guarded.Skippable("gone-too", skip=True, unless=True), guarded.Skippable("runs-too", skip=False, unless=True))
    drain(runtime)
    assert sorted(tags(ledger)) == ["runs", "runs-too"]
    assert queue_size(runtime) == 0 and failed_records(runtime) == {}


def test_fail_on_exception_fails_at_once_only_for_its_types(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    dispatch(runtime, guarded.Refused("perm"), guarded.Refused("other", error="lookup"))
    drain(runtime)
    starts = [row[1] for row in lines(ledger, "start")]
    assert starts.count("perm") == 1 and starts.count("other") == 2  # tries = 2 for the other one
    assert sorted(e.split(":")[0] for e in errors(runtime)) == ["LookupError", "PermissionError"]


def test_bad_middleware_options_are_clear_errors() -> None:
    with pytest.raises(MiddlewareError, match="release_after must be a number of seconds >= 0"):
        WithoutOverlapping("k").release_after(-1)
    with pytest.raises(MiddlewareError, match=r"Limit.per_minute\(0\)"):
        Limit.per_minute(0)
    with pytest.raises(MiddlewareError, match="max_exceptions must be a whole number"):
        ThrottlesExceptions(0)
    with pytest.raises(MiddlewareError, match="no rate limiter named 'missing'"):
        guarded.RateLimited("missing")
    with pytest.raises(MiddlewareError, match="not callable"):
        RateLimiter.for_("x", 3)  # type: ignore[arg-type]
    with pytest.raises(MiddlewareError, match="exception classes or a function"):
        ThrottlesExceptions().fail_when("PermissionError")
    assert Skip.when(True).skip_if is True


def test_verbose_worker_says_a_middleware_stopped_the_job(setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    dispatch(runtime, guarded.Skippable("gone", skip=True), guarded.Skippable("runs", skip=False))
    result = run_qctl(["work", "--stop-when-empty", "-v"], cwd=setup.directory)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert sum("Skippable SKIPPED by middleware (deleted)" in line for line in out) == 1, out
    assert sum("Skippable DONE" in line for line in out) == 1, out
