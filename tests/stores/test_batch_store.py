"""The batch store on every backend: members counted once, callbacks due on the member that crossed the line."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from qctl.bus import batch_database, batch_redis
from qctl.bus.batch_database import DatabaseBatchStore
from qctl.bus.batch_memory import MemoryBatchStore
from qctl.bus.batch_redis import RedisBatchStore
from qctl.bus.batch_store import BatchRecord, BatchStore, NewBatch, Recorded, connect
from qctl.config import DEFAULT_REDIS_URL, ConnectionConfig, StoreConfig, parse
from qctl.db.engines import dispose_all, get_engine
from qctl.db.tables import tables_by_url
from qctl.errors import ConfigError, QctlError, StoreUnavailableError
from tests.support.configs import drop_redis_keys
from tests.support.services import require, url_for

KINDS = ["sqlite", "postgresql", "mariadb", "redis", "memory"]
T0 = 1_700_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = float(T0)

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[BatchStore]:
    kind = request.param
    require(kind)
    token = secrets.token_hex(4)
    url = url_for("sqlite" if kind == "memory" else kind, tmp_path)
    made: BatchStore
    if kind == "redis":
        made = RedisBatchStore(url, f"qctl-test-{token}:job_batches", clock)
    elif kind == "memory":
        made = MemoryBatchStore(clock)
    else:
        made = DatabaseBatchStore(url, f"job_batches_{token}", clock)
    yield made
    made.close()
    if kind == "redis":
        drop_redis_keys(url, f"qctl-test-{token}:")
    elif kind not in ("sqlite", "memory"):
        with get_engine(url).begin() as conn:
            for name in (f"job_batches_{token}", f"job_batches_{token}_jobs"):
                conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    dispose_all()


def batch(store: BatchStore, jobs: list[str], batch_id: str = "b1", **options: object) -> BatchRecord:
    assert store.create(NewBatch(batch_id, "nightly", dict(options))) is True
    store.add_jobs(batch_id, jobs)
    return found(store, batch_id)


def found(store: BatchStore, batch_id: str = "b1") -> BatchRecord:
    record = store.find(batch_id)
    assert record is not None
    return record


# --- creating and adding ----------------------------------------------------------------


def test_a_batch_is_created_once(store: BatchStore) -> None:
    assert store.find("b1") is None
    assert store.create(NewBatch("b1", "nightly", {"queue": "low", "then": ["app.done"]})) is True
    assert store.create(NewBatch("b1", "other", {})) is False
    assert found(store) == BatchRecord("b1", "nightly", 0, 0, 0, (), {"queue": "low", "then": ["app.done"]}, T0)


def test_adding_counts_only_new_members(store: BatchStore, clock: FakeClock) -> None:
    store.create(NewBatch("b1", "", {}))
    assert store.add_jobs("b1", ["a", "b", "c"], fresh_batch=True) == ["a", "b", "c"]
    assert store.add_jobs("b1", ["b", "d", "c", "d"]) == ["d"]
    assert store.add_jobs("b1", ["a", "d"]) == []
    record = found(store)
    assert (record.total_jobs, record.pending_jobs) == (4, 4)
    store.mark_finished("b1")
    assert store.add_jobs("b1", ["a"]) == [] and found(store).finished_at == T0  # nothing new: still finished
    assert store.add_jobs("b1", ["e"]) == ["e"] and found(store).finished_at is None


def test_adding_many_looks_members_up_in_chunks(store: BatchStore) -> None:
    uuids = [f"job-{n:05d}" for n in range(1200)]
    batch(store, uuids)
    assert store.add_jobs("b1", [*reversed(uuids), "job-new"]) == ["job-new"]
    assert (found(store).total_jobs, found(store).pending_jobs) == (1201, 1201)


def test_adding_to_an_unknown_batch_fails(store: BatchStore) -> None:
    with pytest.raises(QctlError, match="no such batch"):
        store.add_jobs("nope", ["a"])
    assert store.find("nope") is None


def test_push_in_runs_inside_the_add_transaction(store: BatchStore) -> None:
    if isinstance(store, RedisBatchStore):
        with pytest.raises(QctlError):
            store.add_jobs("b1", ["a"], push_in=lambda conn, new: None)
        return
    store.create(NewBatch("b1", "", {}))
    seen: list[list[str]] = []
    assert store.add_jobs("b1", ["a", "b"], push_in=lambda conn, new: seen.append(new)) == ["a", "b"]
    assert store.add_jobs("b1", ["a", "c"], push_in=lambda conn, new: seen.append(new)) == ["c"]
    assert seen == [["a", "b"], ["c"]]

    def broken(conn: object, new: list[str]) -> None:
        raise RuntimeError("queue insert failed")

    with pytest.raises(RuntimeError):
        store.add_jobs("b1", ["d"], push_in=broken)
    assert found(store).total_jobs == 3
    assert store.add_jobs("b1", ["d"]) == ["d"]  # the failed add registered nothing


# --- recording outcomes -----------------------------------------------------------------


def test_a_success_counts_once(store: BatchStore) -> None:
    batch(store, ["a", "b"])
    assert store.record_success("b1", "a") == Recorded(known=True, fresh=True, pending_jobs=1)
    assert store.record_success("b1", "a") == Recorded(known=True, fresh=False, pending_jobs=1)
    assert found(store).pending_jobs == 1


def test_then_and_finally_fall_due_on_the_last_member(store: BatchStore, clock: FakeClock) -> None:
    batch(store, ["a", "b"])
    clock.now += 60
    assert store.record_success("b1", "a").due == ()
    last = store.record_success("b1", "b")
    assert (last.fresh, last.pending_jobs, last.due) == (True, 0, ("then", "finally"))
    assert found(store).finished_at == T0 + 60
    again = store.record_success("b1", "b")  # redelivered before it acknowledged: still owes both
    assert (again.fresh, again.due) == (False, ("then", "finally"))
    store.callback_done("b1", "b", "then")
    assert store.record_success("b1", "b").due == ("finally",)
    store.callback_done("b1", "b", "finally")
    store.callback_done("b1", "b", "finally")
    assert store.record_success("b1", "b").due == ()
    assert store.record_success("b1", "a").due == ()


def test_the_first_failure_owes_catch_and_cancels(store: BatchStore, clock: FakeClock) -> None:
    batch(store, ["a", "b", "c"])
    clock.now += 5
    first = store.record_failure("b1", "a")
    assert first == Recorded(known=True, fresh=True, pending_jobs=3, failed_jobs=1, due=("catch",))
    record = found(store)
    assert (record.cancelled_at, record.finished_at, record.failed_job_ids) == (T0 + 5, T0 + 5, ("a",))
    assert store.record_failure("b1", "a") == Recorded(known=True, fresh=False, pending_jobs=3, failed_jobs=1,
                                                      due=("catch",))
    clock.now += 5
    assert store.record_failure("b1", "b").due == ()  # not the first failure: no catch
    assert store.record_success("b1", "c").due == ("finally",)  # every job has run; not all succeeded
    record = found(store)
    assert (record.pending_jobs, record.failed_jobs, record.failed_job_ids) == (2, 2, ("a", "b"))
    assert (record.cancelled_at, record.finished_at) == (T0 + 5, T0 + 5)


def test_allowing_failures_does_not_cancel(store: BatchStore) -> None:
    batch(store, ["a", "b"], allowFailures=True)
    assert store.record_failure("b1", "a").due == ("catch",)
    assert store.record_success("b1", "b").due == ("finally",)
    record = found(store)
    assert (record.cancelled_at, record.finished_at, record.pending_jobs) == (None, None, 1)


def test_a_retried_failure_that_succeeds_leaves_failed_job_ids(store: BatchStore, clock: FakeClock) -> None:
    batch(store, ["a", "b"], allowFailures=True)
    store.record_failure("b1", "a")
    store.callback_done("b1", "a", "catch")
    assert store.record_success("b1", "b").due == ("finally",)
    clock.now += 30
    retried = store.record_success("b1", "a")
    assert retried == Recorded(known=True, fresh=True, pending_jobs=0, failed_jobs=1, due=("then",))
    record = found(store)
    assert (record.failed_jobs, record.failed_job_ids, record.finished_at) == (1, (), T0 + 30)
    assert store.record_success("b1", "a").fresh is False
    assert store.record_failure("b1", "a").fresh is False


def test_a_retried_member_keeps_the_callbacks_it_still_owes(store: BatchStore) -> None:
    batch(store, ["a"], allowFailures=True)
    assert store.record_failure("b1", "a").due == ("catch", "finally")
    assert store.record_success("b1", "a").due == ("then", "catch", "finally")


def test_skipped_links_leave_pending_and_let_finally_fall_due(store: BatchStore) -> None:
    batch(store, ["a", "b1", "b2", "c", "done"])
    store.record_success("b1", "done")
    failed = store.record_failure("b1", "a", skipped=["b1", "b2", "done", "stranger"])
    assert (failed.pending_jobs, failed.failed_jobs, failed.due) == (2, 1, ("catch",))
    assert store.record_success("b1", "b1").fresh is False  # a skipped link stays skipped
    last = store.record_success("b1", "c")
    assert (last.pending_jobs, last.due) == (1, ("finally",))
    assert found(store).pending_jobs - len(found(store).failed_job_ids) == 0


def test_a_failure_that_skips_the_rest_owes_finally(store: BatchStore) -> None:
    batch(store, ["a", "b"])
    assert store.record_failure("b1", "a", skipped=["b"]).due == ("catch", "finally")
    assert found(store).pending_jobs == 1


def test_unknown_batches_and_members_change_nothing(store: BatchStore) -> None:
    batch(store, ["a"])
    before = found(store)
    assert store.record_success("nope", "a") == Recorded(known=False)
    assert store.record_failure("nope", "a", skipped=["b"]) == Recorded(known=False)
    assert store.record_success("b1", "stranger") == Recorded(known=False)
    assert store.record_failure("b1", "stranger", skipped=["a"]) == Recorded(known=False)
    store.callback_done("nope", "a", "then")
    store.callback_done("b1", "stranger", "then")
    store.cancel("nope")
    store.mark_finished("nope")
    assert found(store) == before
    assert store.find("nope") is None and store.delete("nope") is False


def test_pending_jobs_never_goes_negative(store: BatchStore) -> None:
    batch(store, ["a"])
    for _ in range(3):
        store.record_success("b1", "a")
        store.record_failure("b1", "a", skipped=["a"])
    assert found(store).pending_jobs == 0


def test_cancel_and_mark_finished(store: BatchStore, clock: FakeClock) -> None:
    batch(store, ["a"])
    clock.now += 10
    store.cancel("b1")
    clock.now += 10
    store.cancel("b1")
    assert (found(store).cancelled_at, found(store).finished_at) == (T0 + 10, T0 + 10)
    store.create(NewBatch("empty", "", {}))
    store.mark_finished("empty")
    assert found(store, "empty").finished_at == T0 + 20
    store.cancel("empty")
    assert (found(store, "empty").cancelled_at, found(store, "empty").finished_at) == (T0 + 20, T0 + 20)


def test_delete_removes_the_members_too(store: BatchStore) -> None:
    batch(store, ["a", "b"])
    store.record_failure("b1", "a")
    assert store.delete("b1") is True and store.find("b1") is None
    assert store.delete("b1") is False
    assert store.record_success("b1", "b") == Recorded(known=False)
    batch(store, ["a", "b"])
    assert found(store).failed_job_ids == () and found(store).total_jobs == 2


# --- listing and pruning ----------------------------------------------------------------


def test_list_is_newest_first(store: BatchStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_redis, "PAGE", 2)
    for n in range(5):
        store.create(NewBatch(f"b{n}", "", {}))
        clock.now += 1
    store.mark_finished("b3")
    assert [r.id for r in store.recent()] == ["b4", "b3", "b2", "b1", "b0"]
    assert [r.id for r in store.recent(limit=2)] == ["b4", "b3"]
    assert [r.id for r in store.recent(limit=3, unfinished=True)] == ["b4", "b2", "b1"]


def test_the_three_prune_rules(store: BatchStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_redis, "PAGE", 2)
    monkeypatch.setattr(batch_database, "CHUNK", 2)
    for era in ("old", "new"):
        for kind in ("finished", "finished2", "running", "cancelled", "kept"):
            batch(store, ["a", "b"], batch_id=f"{era}-{kind}")
        clock.now += 10
        for name in ("finished", "finished2"):
            store.record_success(f"{era}-{name}", "a")
            store.record_success(f"{era}-{name}", "b")
        store.cancel(f"{era}-cancelled")
        store.record_success(f"{era}-kept", "a")
        clock.now += 1000
    # old ones were created at T0, finished or cancelled at T0 + 10; new ones at T0 + 1010 and T0 + 1020
    assert store.prune_cancelled(T0 + 1000) == 1
    assert store.prune_unfinished(T0 + 1000) == 2  # old-running and old-kept
    assert store.prune_finished(T0 + 10) == 0
    assert store.prune_finished(T0 + 11) == 2
    left = {r.id for r in store.recent()}
    assert left == {"new-finished", "new-finished2", "new-running", "new-cancelled", "new-kept"}
    assert store.record_success("old-kept", "b") == Recorded(known=False)
    batch(store, ["a", "b"], batch_id="old-kept")  # its members went with it: both count as new again
    assert found(store, "old-kept").pending_jobs == 2


# --- concurrency ------------------------------------------------------------------------


def test_concurrent_successes_count_each_member_once(store: BatchStore) -> None:
    threads = 4 if isinstance(store, DatabaseBatchStore) and store.engine.dialect.name == "sqlite" else 8
    uuids = [f"job-{n:03d}" for n in range(400)]
    batch(store, uuids)
    slices = [uuids[n::threads] for n in range(threads)]
    results: list[tuple[str, Recorded]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for uuid in [*slices[n], *slices[(n + 1) % threads]]:  # every uuid recorded by two threads
                recorded = store.record_success("b1", uuid)
                with lock:
                    results.append((uuid, recorded))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    fresh = [(uuid, r) for uuid, r in results if r.fresh]
    assert sorted(uuid for uuid, _ in fresh) == uuids
    assert found(store).pending_jobs == 0
    owing_then = {uuid for uuid, r in fresh if "then" in r.due}
    assert len(owing_then) == 1
    assert store.record_success("b1", owing_then.pop()).due == ("then", "finally")


# --- failures of the store itself -------------------------------------------------------

DEAD = {
    "redis": "redis://127.0.0.1:1/0",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:1/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:1/test",
}


@pytest.mark.parametrize("kind", sorted(DEAD))
def test_a_dead_server_is_one_clear_line(kind: str) -> None:
    dead: BatchStore = RedisBatchStore(DEAD[kind]) if kind == "redis" else DatabaseBatchStore(DEAD[kind])
    try:
        for call in (lambda: dead.create(NewBatch("b1", "", {})), lambda: dead.record_success("b1", "a"),
                     lambda: dead.add_jobs("b1", ["a"]), lambda: dead.prune_finished(T0), lambda: dead.recent()):
            with pytest.raises(StoreUnavailableError) as raised:
                call()
            message = str(raised.value)
            assert message.startswith("batch store") and "127.0.0.1:1" in message and "\n" not in message
    finally:
        dead.close()
        dispose_all()


# --- wiring: factory, config, migrate ---------------------------------------------------


def test_connect_picks_the_configured_store(tmp_path: Path) -> None:
    assert isinstance(connect(StoreConfig("redis", DEFAULT_REDIS_URL, "ns")), RedisBatchStore)
    database = connect(StoreConfig("database", url_for("sqlite", tmp_path), "job_batches"))
    assert isinstance(database, DatabaseBatchStore)
    with pytest.raises(ConfigError):
        connect(StoreConfig("sqs", "", ""))


def test_can_push_only_with_a_driver_on_the_same_engine(tmp_path: Path) -> None:
    from qctl.drivers.database import DatabaseDriver

    url = url_for("sqlite", tmp_path)
    store = DatabaseBatchStore(url)
    assert store.can_push_with(DatabaseDriver(ConnectionConfig("main", "database", url))) is True
    other = DatabaseDriver(ConnectionConfig("main", "database", f"sqlite:///{tmp_path}/other.sqlite"))
    assert store.can_push_with(other) is False and store.can_push_with(object()) is False
    assert RedisBatchStore(DEFAULT_REDIS_URL).can_push_with(other) is False
    dispose_all()


def test_batching_on_redis_is_configurable_and_migrates_no_tables() -> None:
    config = parse({"batching": {"driver": "redis"}})
    assert config.batching == StoreConfig("redis", DEFAULT_REDIS_URL, "job_batches", "built-in defaults: batching.url")
    assert not any(t.name.startswith("job_batches") for tables in tables_by_url(config).values() for t in tables)
    names = {t.name for tables in tables_by_url(parse({})).values() for t in tables}
    assert {"job_batches", "job_batches_jobs"} <= names
