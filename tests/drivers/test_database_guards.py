"""PostgreSQL: a guard committed ahead of a finished job's delete, in the round trip of the next reserve.

A granted guard's effect is committed and the job deleted; a refusing guard deletes nothing and marks
the job held (the worker settles it the long way); a guard that fails for another reason is kept, so
the next try runs it again, and its connection is replaced.
"""

from __future__ import annotations

import json

import pytest
from psycopg.errors import DivisionByZero
from sqlalchemy import text

from qctl.db.together import Prepared, SqlGuard
from qctl.drivers.database import DatabaseDriver, DatabaseReservedJob
from qctl.errors import DriverError
from tests.drivers.test_conformance import make_driver, payload


@pytest.fixture
def pg(setup_factory, runtime_factory):  # type: ignore[no-untyped-def]
    driver = make_driver(setup_factory, runtime_factory, "postgresql")
    assert isinstance(driver, DatabaseDriver) and driver.takes_guards
    marks = f"guard_marks_{driver.table.name}"
    with driver.engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {marks} (n int, t text)"))
    yield driver, marks
    with driver.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {marks}"))


def reserved(driver: DatabaseDriver) -> DatabaseReservedJob:
    job = driver.pop(["default"])
    assert isinstance(job, DatabaseReservedJob)
    return job


def marked(driver: DatabaseDriver, marks: str) -> list[int]:
    with driver.engine.connect() as conn:
        return [row[0] for row in conn.execute(text(f"SELECT n FROM {marks} ORDER BY n"))]


def marking(marks: str, n: int, refuse: bool = False) -> SqlGuard:
    """Inserts `n`; when refusing, raises after the insert (which is then rolled back)."""
    tail = "SELECT 1 / count(*)::int FROM added WHERE false" if refuse else "SELECT count(*) FROM added"
    sql = f"WITH added AS (INSERT INTO {marks} VALUES (%(n)s) RETURNING 1) {tail}"
    return SqlGuard(Prepared.of(sql), {"n": n}, DivisionByZero)


def test_a_granted_guard_commits_then_the_job_is_deleted_and_the_next_reserved(pg) -> None:  # type: ignore[no-untyped-def]
    driver, marks = pg
    for n in (1, 2, 3):
        driver.push(payload(n), "default")
    first = reserved(driver)
    first.guard = marking(marks, 1)
    second = driver.pop_after(first, ["default"])
    assert second is not None and json.loads(second.raw)["n"] == 2
    assert first.guard is None and not first.held and first.delete() is False  # it is gone
    assert marked(driver, marks) == [1]
    second.guard = marking(marks, 2)  # prepared already on this connection: runs again with new values
    third = driver.pop_after(second, ["default"])
    assert third is not None and json.loads(third.raw)["n"] == 3 and marked(driver, marks) == [1, 2]
    assert driver.sizes("default").reserved == 1


def test_a_refusing_guard_keeps_the_job_reserved_and_still_reserves_the_next(pg) -> None:  # type: ignore[no-untyped-def]
    driver, marks = pg
    driver.push(payload(1), "default")
    driver.push(payload(2), "default")
    first = reserved(driver)
    first.guard = marking(marks, 1, refuse=True)
    second = driver.pop_after(first, ["default"])
    assert second is not None and json.loads(second.raw)["n"] == 2
    assert first.held and first.guard is None and marked(driver, marks) == []  # rolled back
    assert driver.sizes("default").reserved == 2
    assert first.delete() is True  # the long way, as the worker does after settling it


def test_a_guarded_job_with_no_queue_to_reserve_from_is_held_not_deleted(pg) -> None:  # type: ignore[no-untyped-def]
    driver, marks = pg
    driver.push(payload(1), "default")
    first = reserved(driver)
    first.guard = marking(marks, 1)
    assert driver.pop_after(first, []) is None
    assert first.held and driver.sizes("default").reserved == 1 and marked(driver, marks) == []


def test_a_failing_guard_is_kept_for_the_next_try_on_a_new_connection(pg) -> None:  # type: ignore[no-untyped-def]
    driver, marks = pg
    driver.push(payload(1), "default")
    driver.push(payload(2), "default")
    first = reserved(driver)
    broken = SqlGuard(Prepared.of(f"SELECT n FROM {marks}_missing WHERE n = %(n)s"), {"n": 1}, DivisionByZero)
    first.guard = broken
    with pytest.raises(DriverError) as caught:
        driver.pop_after(first, ["default"])
    assert "\n" not in str(caught.value) and first.guard is broken and not first.held
    assert driver.sizes("default").reserved == 1  # nothing deleted, nothing reserved
    first.guard = marking(marks, 1)
    second = driver.pop_after(first, ["default"])
    assert second is not None and json.loads(second.raw)["n"] == 2 and marked(driver, marks) == [1]


def test_string_values_arrive_exactly_as_given(pg) -> None:  # type: ignore[no-untyped-def]
    """The guard's values travel as literals in the message: quotes, backslashes and non-ASCII intact."""
    driver, marks = pg
    driver.push(payload(1), "default")
    first = reserved(driver)
    tricky = "it's a \\ back'slash'' -- ; DROP TABLE x; é \u2603"
    sql = f"WITH added AS (INSERT INTO {marks} VALUES (1, %(t)s) RETURNING 1) SELECT count(*) FROM added"
    first.guard = SqlGuard(Prepared.of(sql), {"t": tricky}, DivisionByZero)
    driver.pop_after(first, ["default"])
    with driver.engine.connect() as conn:
        assert conn.execute(text(f"SELECT t FROM {marks}")).scalar_one() == tricky
