"""Big payloads: a 20 MB argument runs where the server takes it; where it does not (MariaDB's
`max_allowed_packet`), dispatch refuses it in one line naming the limit and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from qctl.errors import DriverError
from qctl.runtime import use
from tests.support.processes import run_qctl

TWENTY_MB = 20 * 1024 * 1024


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "redis"])
def test_a_20_mb_argument_is_queued_and_run(kind: str, setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Blob

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    out = tmp_path / "received.txt"
    with use(runtime):
        Blob("x" * TWENTY_MB, str(out)).dispatch()
    # a 20 MB argument is held several times over while it is read, decoded and run, which can take the
    # worker past the default 128 MB --memory limit after the job (exit 12, as designed): this test is
    # about the payload, so it raises the limit
    done = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1", "--memory", "1024"], setup.directory, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == str(TWENTY_MB)
    assert runtime.connections.get().size("default") == 0 and runtime.failed_store.count() == 0


def test_mariadb_refuses_a_payload_over_max_allowed_packet_at_dispatch(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Blob

    setup = setup_factory("mariadb")
    runtime = runtime_factory(setup)
    driver = runtime.connections.get()
    limit = driver._packet_limit()  # the server's own @@max_allowed_packet
    out = tmp_path / "received.txt"
    with use(runtime):
        with pytest.raises(DriverError) as caught:
            Blob("x" * limit, str(out)).dispatch()
        Blob("x" * (limit // 2), str(out)).dispatch()  # half the limit still goes
    message = str(caught.value)
    assert "max_allowed_packet" in message and f"({limit / 1024 / 1024:.1f} MB)" in message and "\n" not in message
    assert driver.size("default") == 1  # only the job that fits: nothing half-written
    done = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], setup.directory, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == str(limit // 2)
