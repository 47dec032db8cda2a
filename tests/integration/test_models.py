"""SQLAlchemy model attributes: only class and primary key travel; real `qctl work` processes fetch
the rows again through `[models] session` on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from qctl_testjobs import transactional as tx
from sqlalchemy import Column, Integer, create_engine
from sqlalchemy.orm import DeclarativeBase, Session

import qctl
from qctl.cache import keys
from qctl.errors import SerializationError
from tests.support.flows import current, drain, flow_ledger, lines
from tests.support.processes import run_qctl
from tests.support.services import url_for
from tests.support.workers import failed_records, queue_size

SQL_KINDS = ["sqlite", "postgresql", "mariadb"]
MODELS = '\n[models]\nsession = "qctl_testjobs.transactional:make_session"\n'


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with flow_ledger(tmp_path, monkeypatch) as path:
        yield path


@pytest.fixture(params=SQL_KINDS)
def world(request, setup_factory, runtime_factory, monkeypatch):  # type: ignore[no-untyped-def]
    kind = request.param
    setup = setup_factory(kind, extra=MODELS)
    url = url_for(kind, setup.directory)
    monkeypatch.setenv(tx.MODELS_URL_ENV, url)  # the worker processes inherit it
    engine = create_engine(url)
    tx.Base.metadata.create_all(engine, checkfirst=True)
    runtime = runtime_factory(setup)
    with current(runtime):
        yield setup, runtime, engine
    engine.dispose()


def saved_order(engine, skus=("a", "b")):  # type: ignore[no-untyped-def]
    order_id = secrets.token_hex(8)
    with Session(engine, expire_on_commit=False) as session:
        order = tx.Order(id=order_id, status="new")
        lines = [tx.Line(order_id=order_id, number=n, sku=sku) for n, sku in enumerate(skus)]
        session.add_all([order, *lines])
        session.commit()
    return order, lines


def work(setup) -> None:  # type: ignore[no-untyped-def]
    result = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], cwd=setup.directory)
    assert result.returncode == 0, result.stderr


def test_a_model_travels_as_its_key_and_the_worker_fetches_it_again(world, ledger) -> None:  # type: ignore[no-untyped-def]
    setup, runtime, engine = world
    order, order_lines = saved_order(engine)
    job = tx.MarkShipped(order, order_lines, tag="t1")
    payload = json.loads(runtime.dispatcher.envelope(job).to_json(None))
    command = payload["data"]["command"]
    assert command["order"] == {"__qctl__": "model", "v": {"cls": "qctl_testjobs.transactional:Order", "key": [order.id]}}
    assert command["lines"][1]["v"] == {"cls": "qctl_testjobs.transactional:Line", "key": [order.id, 1]}  # composite
    assert "status" not in json.dumps(command)  # no column value travels, only the key
    with Session(engine) as session:  # changed after dispatch: the job sees the row as it is when it runs
        session.get(tx.Order, order.id).status = "paid"  # type: ignore[union-attr]
        session.commit()
    job.dispatch()
    qctl.dispatch(tx.ship_order, order, "fn")
    work(setup)
    ends = lines(ledger, "end")
    assert [row[1:5] for row in ends if row[1] == "t1"] == [["t1", "paid", "a+b", "Order"]]
    assert [row[1:4] for row in ends if row[1] == "fn"] == [["fn", order.id, "shipped"]]
    with Session(engine) as session:  # the job committed its change through the models session
        assert session.get(tx.Order, order.id).status == "shipped"  # type: ignore[union-attr]


def test_a_missing_model_fails_the_job_naming_class_and_key(world, ledger) -> None:  # type: ignore[no-untyped-def]
    setup, runtime, engine = world
    order, _ = saved_order(engine)
    uuid = tx.MarkShipped(order).dispatch()
    with Session(engine) as session:
        session.delete(session.get(tx.Order, order.id))
        session.commit()
    work(setup)
    record = failed_records(runtime)[uuid]
    assert "ModelNotFoundError" in record.exception
    assert f"qctl_testjobs.transactional.Order with key '{order.id}' no longer exists" in record.exception
    assert lines(ledger, "end") == []


def test_delete_when_missing_models_deletes_quietly_and_gives_back_the_unique_lock(world, ledger) -> None:  # type: ignore[no-untyped-def]
    setup, runtime, engine = world
    order, _ = saved_order(engine)
    tx.MarkShippedOrDelete(order).dispatch()
    assert tx.UniqueMarkShippedOrDelete(order).dispatch() is not None
    lock = keys.unique_job("qctl_testjobs.transactional.UniqueMarkShippedOrDelete", order.id)
    assert runtime.cache.owner(lock) is not None
    with Session(engine) as session:
        session.delete(session.get(tx.Order, order.id))
        session.commit()
    work(setup)
    assert failed_records(runtime) == {}
    assert queue_size(runtime) == 0
    assert runtime.cache.owner(lock) is None
    assert lines(ledger, "end") == []


class Outside(DeclarativeBase):
    pass


class Stray(Outside):
    """A mapped class outside the `app` packages."""

    __tablename__ = "qctl_test_stray"
    id = Column(Integer, primary_key=True)


def test_dispatch_refuses_unsaved_models_models_outside_app_and_a_missing_session(setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", extra=MODELS)
    engine = create_engine(f"sqlite:///{tmp_path}/app.sqlite")
    tx.Base.metadata.create_all(engine)
    Outside.metadata.create_all(engine)
    with current(runtime_factory(setup)):
        with pytest.raises(SerializationError, match="not saved yet"):
            tx.MarkShipped(tx.Order(id="new")).dispatch()
        with Session(engine, expire_on_commit=False) as session:
            stray = Stray(id=1)
            order = tx.Order(id=secrets.token_hex(4))
            session.add_all([stray, order])
            session.commit()
        with pytest.raises(SerializationError, match="model tests.integration.test_models.Stray is outside the app packages"):
            tx.MarkShipped(stray).dispatch()
    bare = setup_factory("sqlite")
    with current(runtime_factory(bare)), pytest.raises(SerializationError, match=r"no `\[models\] session` is set"):
        tx.MarkShipped(order).dispatch()
    engine.dispose()


def test_the_models_session_is_closed_once_the_job_has_settled(world, ledger) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import inspect
    from sqlalchemy.orm import object_session

    setup, runtime, engine = world
    order, _ = saved_order(engine, skus=())
    tx.MarkShipped(order, tag="closed").dispatch()
    drain(runtime)
    assert [row[1] for row in lines(ledger, "end")] == ["closed"]
    seen, session = tx.last_seen
    assert inspect(seen).identity == (order.id,)
    assert list(session) == [] and object_session(seen) is None  # closed by the worker: nothing left in it
