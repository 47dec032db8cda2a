"""The Python dispatch API: fluent options, conditions, queued functions, sync and null, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import qctl
from qctl.errors import SerializationError
from qctl.runtime import use
from tests.support.processes import run_qctl


@pytest.fixture
def runtime(setup_factory, runtime_factory):  # type: ignore[no-untyped-def]
    rt = runtime_factory(setup_factory("sqlite"))
    with use(rt):
        yield rt


def stored(runtime, queue: str = "default") -> list[dict]:  # type: ignore[no-untyped-def]
    driver = runtime.connections.get()
    bodies = []
    while (job := driver.pop([queue])) is not None:
        bodies.append(json.loads(job.raw))
        assert job.delete()
    return bodies


def test_payload_carries_the_job_options(runtime) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs.secret import Options

    job_id = Options().dispatch()
    [body] = stored(runtime, "podcasts")
    assert body["uuid"] == job_id
    assert (body["maxTries"], body["timeout"], body["backoff"], body["maxExceptions"], body["failOnTimeout"]) == (
        4, 12, "1,5,10", 2, True)
    assert body["data"]["commandName"] == "qctl_testjobs.secret:Options"
    assert body["displayName"] == "qctl_testjobs.secret.Options"


def test_on_queue_and_conditions(runtime) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    assert qctl.dispatch_if(False, Ok(1)) is None
    assert qctl.dispatch_unless(lambda: True, Ok(2)) is None
    first = qctl.dispatch_if(lambda: True, Ok(3).on_queue("other"))
    second = qctl.dispatch_unless(False, Ok(4))
    assert [b["uuid"] for b in stored(runtime, "other")] == [first]
    assert [b["uuid"] for b in stored(runtime)] == [second]


def test_unknown_connection_is_a_config_error(runtime) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    from qctl.errors import ConfigError

    with pytest.raises(ConfigError, match="no such connection"):
        Ok(1).on_connection("ghost").dispatch()


def test_queued_functions_and_their_refusals(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import not_marked, write_file

    out = tmp_path / "out.txt"
    qctl.queued(write_file, str(out), "a").on_queue("fn").dispatch()
    [body] = stored(runtime, "fn")
    assert body["data"]["commandName"] == "qctl_testjobs:write_file"
    assert body["job"] == "qctl.CallQueuedFunction@call"

    def nested() -> None:
        pass

    class Holder:
        def method(self) -> None:
            pass

    for bad, fragment in ((lambda: 1, "lambda"), (nested, "nested"), (Holder().method, "bound method"),
                          (not_marked, "@qctl.queueable"), (print, "module-level functions")):
        with pytest.raises(SerializationError, match=fragment):
            qctl.dispatch(bad)
    with pytest.raises(SerializationError, match="catch callbacks"):
        qctl.queued(write_file, "x", "y").catch(lambda exc: None)
    assert runtime.connections.get().size("fn") == 0


def test_unserialisable_attribute_is_refused_at_dispatch(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    job = Ok(1)
    job.callback = lambda: 1  # type: ignore[attr-defined]
    with pytest.raises(SerializationError, match="Ok.callback"):
        job.dispatch()
    with open(tmp_path / "f", "w") as handle:
        job = Ok(2)
        job.handle_file = handle  # type: ignore[attr-defined]
        with pytest.raises(SerializationError, match="Ok.handle_file"):
            job.dispatch()
    assert runtime.connections.get().size("default") == 0


def test_job_outside_the_app_packages_is_refused_at_dispatch(runtime) -> None:  # type: ignore[no-untyped-def]
    from qctl.demo import ResizeImage

    with pytest.raises(SerializationError, match="add 'qctl' to `app`"):
        ResizeImage(1, (1,)).dispatch()


def test_dispatch_sync_runs_now_and_raises_to_the_caller_recording_nothing(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import write_file
    from qctl_testjobs.secret import Failing

    out = tmp_path / "sync.txt"
    qctl.dispatch_sync(write_file, str(out), "now")
    assert out.read_text() == "now"
    Failing.failures.clear()
    with pytest.raises(ValueError, match="sync failure"):
        Failing().dispatch_sync()
    assert Failing.failures == ["sync failure"]
    with pytest.raises(ValueError, match="sync failure"):
        Failing().on_connection("sync").dispatch()
    assert Failing.failures == ["sync failure"] * 2
    assert runtime.failed_store.count() == 0  # the caller has the exception; nothing to retry later


def test_sync_and_null_connections(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import write_file

    out = tmp_path / "sync.txt"
    qctl.queued(write_file, str(out), "via sync").on_connection("sync").dispatch()
    assert out.read_text() == "via sync"
    assert qctl.queued(write_file, str(out), "dropped").on_connection("null").dispatch()
    assert out.read_text() == "via sync"


def dispatch_card_number(setup_factory, runtime_factory, out: Path):  # type: ignore[no-untyped-def]
    """A SQLite setup with an app key, and one encrypted job queued that writes 4111-1111 to `out`."""
    from qctl_testjobs.secret import Secret

    from qctl.payload.signing import generate_key

    setup = setup_factory("sqlite", key=generate_key())
    runtime = runtime_factory(setup)
    with use(runtime):
        Secret("4111-1111", str(out)).dispatch()
    return setup, runtime


def test_encrypted_job_hides_its_data_and_runs(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "card.txt"
    setup, runtime = dispatch_card_number(setup_factory, runtime_factory, out)
    job = runtime.connections.get().pop(["default"])
    assert job is not None and b"4111" not in job.raw
    assert job.release(0)  # that reservation counted as an attempt
    done = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1", "--tries", "2"], setup.directory)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "4111-1111"


def test_encrypted_job_needs_a_key(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs.secret import Secret

    with pytest.raises(SerializationError, match="need an app key"):
        Secret("x", str(tmp_path / "x")).dispatch()


def test_a_job_encrypted_under_another_key_is_failed_unread(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from qctl.payload.signing import generate_key

    out = tmp_path / "card.txt"
    setup, runtime = dispatch_card_number(setup_factory, runtime_factory, out)
    done = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1", "--tries", "3"], setup.directory,
                    env={"QCTL_KEY": generate_key()})  # the worker runs with a different key
    assert done.returncode == 0, done.stderr
    assert not out.exists()
    [record] = runtime.failed_store.all()  # failed at once, not retried three times
    assert "signed with another key" in record.exception
    assert "4111" not in record.exception and b"4111" not in record.payload
    assert "4111" not in done.stdout + done.stderr
    assert runtime.connections.get().size("default") == 0


def test_dispatch_without_config_uses_the_embedded_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    code = (
        "import qctl\n"
        "from qctl.demo import ResizeImage\n"
        "from qctl.runtime import current\n"
        "print(ResizeImage(1, (1,)).on_queue('x').dispatch() is None)\n"
    )
    (tmp_path / "qctl.toml").write_text('app = ["qctl.demo"]\n')
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
    assert (tmp_path / "qctl.sqlite").exists()
