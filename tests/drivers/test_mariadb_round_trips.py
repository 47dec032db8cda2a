"""MariaDB reserves and releases in one round trip: the transaction's statements go to the server as one text
(multi-statements), fenced and locked as the BEGIN … COMMIT they replace, and a failure part-way
leaves nothing half done."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from qctl.db.engines import get_engine
from qctl.drivers.database import DatabaseDriver
from qctl.errors import DriverError
from tests.drivers.test_conformance import make_driver, number, payload


@pytest.fixture
def driver(setup_factory, runtime_factory) -> DatabaseDriver:  # type: ignore[no-untyped-def]
    found = make_driver(setup_factory, runtime_factory, "mariadb")
    assert isinstance(found, DatabaseDriver)
    return found


@pytest.fixture
def sent(driver: DatabaseDriver, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The texts this thread's pinned cursor sends, one per round trip."""
    cursor = driver._pinned.cursor()
    texts: list[str] = []
    execute = cursor.execute
    monkeypatch.setattr(cursor, "execute", lambda query, args=None: texts.append(query) or execute(query, args))
    yield texts


def test_reserving_deleting_and_an_empty_poll_take_one_round_trip_each(driver: DatabaseDriver, sent: list[str]) -> None:
    driver.bulk([(payload(n), "default", 0.0) for n in range(3)])
    first = driver.pop(["default"])
    second = driver.pop_after(first, ["default"])  # a busy worker: the delete rides with the next reserve
    assert number(first) == 0 and number(second) == 1 and len(sent) == 2
    assert second is not None and second.delete() and len(sent) == 3
    third = driver.pop(["default"])
    assert driver.pop_after(third, ["default"]) is None and len(sent) == 5
    assert driver.pop(["default"]) is None and len(sent) == 6
    assert driver.size("default") == 0


def test_a_release_takes_one_round_trip_and_stays_fenced(driver: DatabaseDriver, sent: list[str]) -> None:
    driver.bulk([(payload(1), "default", 0.0)])
    job = driver.pop(["default"])
    assert job is not None and job.release(0) is True and len(sent) == 2
    assert job.release(0) is False and len(sent) == 3  # the row it held is gone: nothing inserted
    again = driver.pop(["default"])
    assert number(again) == 1 and again is not None and again.attempts == 2
    assert again.release(60) is True and driver.pop(["default"]) is None and driver.size("default") == 1


def test_a_reserve_that_fails_part_way_leaves_nothing_half_done(driver: DatabaseDriver) -> None:
    """The held job's row is locked by another session: the DELETE gives up (lock wait timeout), the
    server runs none of the statements after it, and the discarded connection rolls back the rest."""
    driver.bulk([(payload(n), "default", 0.0) for n in range(2)])
    held = driver.pop(["default"])
    assert held is not None
    driver._pinned.cursor().execute("SET SESSION innodb_lock_wait_timeout = 1")
    with get_engine(driver._url).connect() as other:
        other.execute(text(f"SELECT id FROM {driver.table.name} WHERE id = {held.key} FOR UPDATE"))
        with pytest.raises(DriverError, match="Lock wait timeout"):
            driver.pop_after(held, ["default"])
        other.rollback()
    assert held.renew() is True  # still reserved by its holder: the delete did not happen
    waiting = driver.pop(["default"])  # and the next job was not left stamped as reserved
    assert number(waiting) == 1 and waiting is not None and waiting.attempts == 1
    assert held.delete() and waiting.delete() and driver.size("default") == 0
