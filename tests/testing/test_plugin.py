"""The pytest plugin, as a user meets it: pytest run in a subprocess on a small project of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

APP = '''
from qctl import Bus, Job

SHIPPED = []


class ShipOrder(Job):
    queue = "orders"

    def __init__(self, order_id):
        self.order_id = order_id

    def handle(self):
        SHIPPED.append(self.order_id)


class Refund(Job):
    def __init__(self, order_id):
        self.order_id = order_id

    def handle(self):
        pass


def place_order(order_id):
    ShipOrder(order_id).dispatch()


def place_and_refund(order_id):
    Bus.chain([ShipOrder(order_id), Refund(order_id)]).dispatch()
'''

TESTS = '''
import qctl.runtime
from shopapp import SHIPPED, Refund, ShipOrder, place_and_refund, place_order


def test_queue_fake(queue_fake):
    place_order(7)
    queue_fake.assert_pushed(ShipOrder, lambda job: job.order_id == 7 and job.queue == "orders")


def test_meant_to_fail(queue_fake):
    place_order(7)
    queue_fake.assert_pushed(Refund)


def test_the_fake_was_undone_after_the_failure():
    place_order(8)
    assert qctl.runtime.current().connections.get().size("orders") == 1


def test_bus_fake(bus_fake):
    place_and_refund(3)
    bus_fake.assert_chained([ShipOrder, Refund])


def test_memory(qctl_memory):
    place_order(1)
    assert qctl_memory.size("orders") == 1
    assert qctl_memory.work_off() == 1
    assert SHIPPED == [1]


def test_memory_then_fake_in_either_order(queue_fake, qctl_memory):
    place_order(2)
    queue_fake.assert_pushed(ShipOrder)
    assert qctl_memory.size("orders") == 0  # the fake sits on the memory runtime
    assert qctl_memory.work_off() == 1       # and work_off runs what it holds
    assert SHIPPED == [1, 2]


def test_everything_was_undone():
    runtime = qctl.runtime.current()
    assert runtime.config.connection().driver == "database"
    assert runtime.connections.get().size("orders") == 1  # only the real push of the third test
    assert "get" not in vars(runtime.connections)
'''


def write_project(root: Path) -> None:
    (root / "shopapp").mkdir()
    (root / "shopapp" / "__init__.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    (root / "tests").mkdir()
    (root / "tests" / "test_shop.py").write_text(textwrap.dedent(TESTS), encoding="utf-8")
    (root / "qctl.toml").write_text('app = ["shopapp"]\n', encoding="utf-8")


def test_fixtures_work_undo_themselves_and_failures_list_what_was_pushed(tmp_path: Path) -> None:
    write_project(tmp_path)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("QCTL_", "PYTEST_")) and k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "tests"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 failed, 6 passed" in out, out
    assert "FAILED tests/test_shop.py::test_meant_to_fail" in out, out
    assert "AssertionError: expected Refund to be pushed, but it was not" in out, out
    assert "ShipOrder(order_id=7) queue 'orders' on 'database'" in out, out
