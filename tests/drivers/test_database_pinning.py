"""The database driver's pinned connections: one per thread, replaced after an error, never shared with a fork."""

from __future__ import annotations

import json
import os
import threading

import pytest
from sqlalchemy import text

from qctl.drivers.database import DatabaseDriver
from qctl.errors import DriverError
from tests.drivers.test_conformance import make_driver, payload


def backend_id(driver: DatabaseDriver) -> int:
    """The server's id for this thread's pinned connection."""
    cursor = driver._pinned.cursor()
    cursor.execute("SELECT pg_backend_pid()" if driver.engine.dialect.name == "postgresql" else "SELECT CONNECTION_ID()")
    return int(cursor.fetchone()[0])


@pytest.fixture(params=["postgresql", "mariadb"])
def server_driver(request, setup_factory, runtime_factory) -> DatabaseDriver:  # type: ignore[no-untyped-def]
    driver = make_driver(setup_factory, runtime_factory, request.param)
    assert isinstance(driver, DatabaseDriver)
    return driver


def test_each_thread_reserves_on_its_own_connection(server_driver: DatabaseDriver) -> None:
    server_driver.push(payload(1), "default")
    server_driver.push(payload(2), "default")
    main = server_driver.pop(["default"])
    seen: dict[str, object] = {}

    def other_thread() -> None:
        job = server_driver.pop(["default"])
        seen["job"], seen["backend"] = job, backend_id(server_driver)
        assert job is not None and job.renew() and job.delete()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert main is not None and seen["job"] is not None
    assert seen["backend"] != backend_id(server_driver)
    assert main.delete() is True
    assert server_driver.size("default") == 0


def test_a_killed_connection_fails_one_call_then_is_replaced(server_driver: DatabaseDriver) -> None:
    server_driver.push(payload(1), "default")
    victim = backend_id(server_driver)
    kill = "SELECT pg_terminate_backend(:id)" if server_driver.engine.dialect.name == "postgresql" else "KILL :id"
    with server_driver.engine.connect() as conn:
        conn.execute(text(kill), {"id": victim})
    with pytest.raises(DriverError):
        server_driver.pop(["default"])
    job = server_driver.pop(["default"])
    assert job is not None and json.loads(job.raw)["n"] == 1
    assert backend_id(server_driver) != victim
    assert job.delete() is True


def test_a_forked_child_pins_its_own_connection(server_driver: DatabaseDriver) -> None:
    server_driver.push(payload(1), "default")
    server_driver.push(payload(2), "default")
    parent_backend = backend_id(server_driver)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: reserve and delete one job, report its connection, leave without cleanup
        try:
            job = server_driver.pop(["default"])
            ok = job is not None and job.delete()
            os.write(write, f"{int(ok)} {backend_id(server_driver)}".encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    ok, child_backend = os.read(read, 100).decode().split()
    assert status == 0 and ok == "1" and int(child_backend) != parent_backend
    job = server_driver.pop(["default"])  # the parent's connection still works
    assert job is not None and job.delete() is True
    assert backend_id(server_driver) == parent_backend
    assert server_driver.size("default") == 0
