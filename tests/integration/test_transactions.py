"""Jobs and the application's transactions: after-commit dispatch on tracked Sessions, Engines and
Connections (savepoints, threads, unique locks, chains, batches, a failed push), and same-transaction
enqueue on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import random
import secrets
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from qctl_testjobs import transactional as tx
from qctl_testjobs.flow import Step
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from qctl import Bus, Queue
from qctl.cache import keys
from qctl.errors import SerializationError
from qctl.transactions import AfterCommitPushError, track
from tests.support.flows import current, drain, flow_ledger, tags
from tests.support.processes import run_qctl
from tests.support.services import url_for
from tests.support.workers import queue_size

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]
SQL_KINDS = ["sqlite", "postgresql", "mariadb"]


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with flow_ledger(tmp_path, monkeypatch) as path:
        yield path


def app_engine(kind: str, directory: Path):  # type: ignore[no-untyped-def]
    """The application's own engine: on the setup's database (SQLite, PostgreSQL, MariaDB); a SQLite
    file of its own when the queue is on Redis."""
    url = url_for(kind if kind in SQL_KINDS else "sqlite", directory)
    engine = create_engine(url if kind != "redis" else f"sqlite:///{directory}/app.sqlite")
    tx.Base.metadata.create_all(engine, checkfirst=True)
    return engine


@pytest.fixture(params=KINDS)
def world(request: pytest.FixtureRequest, setup_factory, runtime_factory):  # type: ignore[no-untyped-def]
    setup = setup_factory(request.param)
    runtime = runtime_factory(setup)
    engine = app_engine(request.param, setup.directory)
    with current(runtime):
        yield setup, runtime, engine
    engine.dispose()


def new_id() -> str:
    return secrets.token_hex(8)


# --- Sessions ------------------------------------------------------------------------------


def test_an_after_commit_job_waits_for_the_commit_and_a_rollback_drops_it(world, ledger) -> None:  # type: ignore[no-untyped-def]
    setup, runtime, engine = world
    Session_ = track(sessionmaker(engine))
    with Session_() as session, session.begin():
        session.add(tx.Order(id=new_id()))
        tx.Ship("kept").after_commit().dispatch()
        tx.Ship("plain").dispatch()  # not after-commit: pushed at once
        Queue.bulk([tx.Ship("bulk-held").after_commit(), tx.Ship("bulk-now")])
        assert queue_size(runtime) == 2
    assert queue_size(runtime) == 4
    with Session_() as session, session.begin():
        tx.Ship("dropped").after_commit().dispatch()
        session.rollback()
    tx.Ship("outside").after_commit().dispatch()  # no open transaction: pushed at once
    assert queue_size(runtime) == 5
    drain(runtime)
    assert sorted(tags(ledger)) == ["bulk-held", "bulk-now", "kept", "outside", "plain"]


def test_a_connection_with_after_commit_holds_every_job_unless_it_says_before_commit(setup_factory, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", connection_options="after_commit = true")
    runtime = runtime_factory(setup)
    engine = app_engine("sqlite", setup.directory)
    session = track(Session(engine))
    with current(runtime):
        session.begin()
        tx.Ship("held").dispatch()
        tx.Ship("now").before_commit().dispatch()
        assert queue_size(runtime) == 1
        session.commit()
        assert queue_size(runtime) == 2
        session.execute(text("SELECT 1"))  # autobegin: a transaction is open again until commit or close
        tx.Ship("closed").dispatch()
        session.close()  # a close without a commit is a rollback
        assert queue_size(runtime) == 2
    engine.dispose()


def test_a_rolled_back_savepoint_drops_only_its_own_jobs(world, ledger) -> None:  # type: ignore[no-untyped-def]
    setup, runtime, engine = world
    Session_ = track(scoped_session(sessionmaker(engine)))
    session = Session_()
    with session.begin():
        tx.Ship("outer").after_commit().dispatch()
        with session.begin_nested():
            tx.Ship("released").after_commit().dispatch()
        nested = session.begin_nested()
        tx.Ship("rolled-back").after_commit().dispatch()
        with session.begin_nested():
            tx.Ship("inside-rolled-back").after_commit().dispatch()
        nested.rollback()
        assert queue_size(runtime) == 0
    Session_.remove()
    assert queue_size(runtime) == 2
    drain(runtime)
    assert sorted(tags(ledger)) == ["outer", "released"]


def test_sessions_open_at_once_are_independent(setup_factory, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    engine = app_engine("sqlite", setup.directory)
    Session_ = track(sessionmaker(engine))
    with current(runtime), Session_() as first, Session_() as second:
        first.begin()
        tx.Ship("first").after_commit().dispatch()
        second.begin()
        tx.Ship("second").after_commit().dispatch()
        second.rollback()
        assert queue_size(runtime) == 0
        first.commit()
        assert queue_size(runtime) == 1
        drain(runtime)
    assert tags(ledger) == ["first"]
    engine.dispose()


def test_threads_queue_exactly_the_jobs_of_the_transactions_they_committed(world, ledger) -> None:  # type: ignore[no-untyped-def]
    setup, runtime, engine = world
    Session_ = track(sessionmaker(engine))
    committed: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(n: int) -> None:
        rng = random.Random(n)
        try:
            start.wait()
            for i in range(100):
                tag = f"t{n}-{i}"
                with Session_() as session:
                    session.begin()
                    tx.Ship(tag).after_commit().dispatch()
                    if rng.random() < 0.5:
                        session.commit()
                        with lock:
                            committed.append(tag)
                    else:
                        session.rollback()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert 300 < len(committed) < 500
    assert queue_size(runtime) == len(committed)
    drain(runtime)
    assert sorted(tags(ledger)) == sorted(committed)


# --- Engines and Connections ---------------------------------------------------------------


def test_a_tracked_engine_or_connection_holds_jobs_until_its_commit(setup_factory, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("postgresql")
    runtime = runtime_factory(setup)
    engine = track(create_engine(url_for("postgresql", setup.directory)))
    with current(runtime):
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
            tx.Ship("engine").after_commit().dispatch()
            assert queue_size(runtime) == 0
        assert queue_size(runtime) == 1
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))  # autobegin
            tx.Ship("rolled-back").after_commit().dispatch()
            conn.rollback()
            conn.execute(text("SELECT 1"))
            tx.Ship("committed").after_commit().dispatch()
            savepoint = conn.begin_nested()
            tx.Ship("savepoint").after_commit().dispatch()
            savepoint.rollback()
            conn.commit()
            tx.Ship("no-transaction").after_commit().dispatch()
        drain(runtime)
    assert sorted(tags(ledger)) == ["committed", "engine", "no-transaction"]
    engine.dispose()


def test_track_refuses_what_it_cannot_follow() -> None:
    with pytest.raises(TypeError, match="expected an SQLAlchemy Session"):
        track(object())
    # sqlalchemy[asyncio] is not a dependency: an object of the same class name stands in for one
    async_engine = type("AsyncSession", (), {})()
    with pytest.raises(TypeError, match="not supported"):
        track(async_engine)


# --- what a held dispatch takes and gives back --------------------------------------------------


def test_a_rollback_gives_back_a_unique_jobs_lock(setup_factory, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("redis")
    runtime = runtime_factory(setup)
    engine = app_engine("redis", setup.directory)
    Session_ = track(sessionmaker(engine))
    lock = keys.unique_job("qctl_testjobs.transactional.UniqueShip", "u")
    with current(runtime):
        with Session_() as session, session.begin():
            assert tx.UniqueShip("u").after_commit().dispatch() is not None
            assert runtime.cache.owner(lock) is not None  # taken at dispatch: a second one is refused
            assert tx.UniqueShip("u").after_commit().dispatch() is None
            session.rollback()
        assert runtime.cache.owner(lock) is None
        with Session_() as session, session.begin():
            assert tx.UniqueShip("u").after_commit().dispatch() is not None
        assert queue_size(runtime) == 1
    engine.dispose()


def test_a_chain_and_a_batch_inside_a_transaction_are_held_as_a_whole(world, ledger) -> None:  # type: ignore[no-untyped-def]
    setup, runtime, engine = world
    Session_ = track(sessionmaker(engine))
    with Session_() as session, session.begin():
        Bus.chain([tx.Ship("c1"), tx.Ship("c2")]).after_commit().dispatch()
        batch = Bus.batch([Step("b1"), Step("b2")]).after_commit().dispatch()
        assert batch.total_jobs == 2 and batch.pending_jobs == 2
        assert Bus.find_batch(batch.id) is None  # nothing stored before the commit
        assert queue_size(runtime) == 0
    assert Bus.find_batch(batch.id) is not None
    with Session_() as session, session.begin():
        Bus.chain([tx.Ship("x1"), tx.Ship("x2")]).after_commit().dispatch()
        dropped = Bus.batch([Step("x3")]).after_commit().dispatch()
        session.rollback()
    assert Bus.find_batch(dropped.id) is None
    drain(runtime)
    assert sorted(tags(ledger)) == ["b1", "b2", "c1", "c2"]
    found = Bus.find_batch(batch.id)
    assert found is not None and found.finished()


def test_a_push_that_fails_after_the_commit_raises_one_line_naming_the_job_and_connection(setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", extra='\n[connections.dead]\ndriver = "redis"\nurl = "redis://127.0.0.1:1/0"\n')
    runtime = runtime_factory(setup)
    engine = app_engine("sqlite", setup.directory)
    Session_ = track(sessionmaker(engine))
    order = new_id()
    with current(runtime), Session_() as session:
        session.begin()
        session.add(tx.Order(id=order))
        tx.Ship("lost").on_connection("dead").after_commit().dispatch()
        tx.Ship("kept").after_commit().dispatch()
        with pytest.raises(AfterCommitPushError) as caught:
            session.commit()
    message = str(caught.value)
    assert "\n" not in message
    assert "the transaction committed" in message and "qctl_testjobs.transactional.Ship" in message and "'dead'" in message
    with Session(engine) as check:  # the application's commit stands, and the other job was queued
        assert check.get(tx.Order, order) is not None
    assert queue_size(runtime) == 1
    engine.dispose()


# --- same-transaction enqueue ------------------------------------------------------------------


@pytest.mark.parametrize("kind", SQL_KINDS)
def test_a_job_written_inside_the_transaction_commits_and_rolls_back_with_it(kind, setup_factory, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind, connection_options="enqueue_in_transaction = true")
    runtime = runtime_factory(setup)
    with current(runtime):
        runtime.connections.get().size("default")  # the jobs table exists before the app's transaction
        engine = app_engine(kind, setup.directory)
        Session_ = track(sessionmaker(engine))
        with Session_() as session, session.begin():
            tx.Ship("committed").dispatch()
            session.add(tx.Order(id=new_id()))
        with Session_() as session, session.begin():
            tx.Ship("rolled-back").dispatch()
            session.rollback()
        with Session_() as session, session.begin():
            tx.Ship("after").after_commit().dispatch()  # the job's own choice beats the connection's
        assert queue_size(runtime) == 2
        drain(runtime)
    assert sorted(tags(ledger)) == ["after", "committed"]
    engine.dispose()


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_worker_takes_nothing_while_the_transaction_is_open(kind, setup_factory, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    with current(runtime):
        runtime.connections.get().size("default")
        engine = app_engine(kind, setup.directory)
        session = track(Session(engine))
        session.begin()
        tx.Ship("inside").in_transaction().dispatch()
        try:
            polled = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], cwd=setup.directory)
            assert polled.returncode == 0, polled.stderr
            assert tags(ledger) == []  # the row is not there for anyone until the commit
            session.commit()
            after = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], cwd=setup.directory)
            assert after.returncode == 0, after.stderr
            assert tags(ledger) == ["inside"]
        finally:
            session.close()
    engine.dispose()


def test_in_transaction_refuses_another_database_or_a_redis_connection(setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("postgresql")
    runtime = runtime_factory(setup)
    other = create_engine(f"sqlite:///{tmp_path}/other.sqlite")
    session = track(Session(other))
    with current(runtime):
        session.begin()
        with pytest.raises(SerializationError, match="cannot write the job inside the open transaction"):
            tx.Ship("x").in_transaction().dispatch()
        session.rollback()
        assert queue_size(runtime) == 0
    other.dispose()
    redis_setup = setup_factory("redis")
    with current(runtime_factory(redis_setup)), pytest.raises(SerializationError, match="needs a database connection"):
        tx.Ship("x").in_transaction().dispatch()


def test_the_config_refuses_enqueue_in_transaction_on_a_redis_connection(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("redis", connection_options="enqueue_in_transaction = true")
    result = run_qctl(["failed"], cwd=setup.directory)
    assert result.returncode == 2
    assert "enqueue_in_transaction: only a database connection" in result.stderr


# --- a process killed between the commit and the push ------------------------------------------

KILLED_APP = """
import sys
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
import qctl
from qctl.transactions import track
from qctl_testjobs import transactional as tx

mode, url, order = sys.argv[1:4]
engine = create_engine(url)
tx.Base.metadata.create_all(engine, checkfirst=True)
Session = track(sessionmaker(engine))
with Session() as session, session.begin():
    session.add(tx.Order(id=order))
    job = tx.Ship(order)
    (job.in_transaction() if mode == "inside" else job.after_commit()).dispatch()
print("survived")  # never: the crash point ends the process between the commit and the push
"""


@pytest.mark.parametrize("mode", ["after", "inside"])
def test_a_process_killed_after_the_commit_loses_the_after_commit_job_but_never_one_written_inside(mode, setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    from tests.support.processes import qctl_env

    setup = setup_factory("postgresql")
    runtime = runtime_factory(setup)
    runtime.connections.get().size("default")
    script = setup.directory / "app.py"
    script.write_text(KILLED_APP, encoding="utf-8")
    order = new_id()
    url = url_for("postgresql", setup.directory)
    env = qctl_env({"QCTL_CRASHPOINT": "after_commit_before_push"})
    done = subprocess.run([sys.executable, str(script), mode, url, order], cwd=setup.directory, env=env,
                          capture_output=True, text=True, timeout=60)
    engine = create_engine(url)
    with Session(engine) as check:
        assert check.scalar(select(tx.Order.id).where(tx.Order.id == order)) == order  # the app committed
    engine.dispose()
    assert done.returncode == 137, done.stderr
    # After-commit: the documented loss, the reason same-transaction enqueue exists; inside: committed with the order.
    assert queue_size(runtime) == (0 if mode == "after" else 1)
