"""A store that refuses its URL for good (a wrong password, a missing database index) stops `qctl work`
with one line naming the config key and exit 2; one that is only down is still retried."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from qctl.errors import DriverError, StoreRefusedError
from tests.support.processes import run_qctl, spawn_qctl, wait_for
from tests.support.redis_server import PrivateRedis, free_port
from tests.support.services import require, url_for

PASSWORD = "s3cret-for-tests"


@pytest.fixture
def guarded_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private redis-server that asks for a password (set once it is up, taken away before it stops)."""
    server = PrivateRedis(tmp_path / "redis-data")
    server.start()
    server.client().config_set("requirepass", PASSWORD)
    yield server
    import redis

    redis.Redis(port=server.port, password=PASSWORD).config_set("requirepass", "")
    server.stop()


def write_config(directory: Path, url: str, section: str = "connections.main") -> None:
    """`main` is a redis connection; the store in `section` (or `main` itself) gets `url`."""
    main_url = url if section == "connections.main" else url_for("redis", directory)
    text = f'default = "main"\n[connections.main]\ndriver = "redis"\nurl = "{main_url}"\nblock_for = 1\n'
    if section != "connections.main":
        text += f'[{section}]\ndriver = "redis"\nurl = "{url}"\n'
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "qctl.toml").write_text(text)


WORKER_START = re.compile(r"\A\S+Z INFO +\S+\[\d+\] worker started on ")


def refusal(stderr: str) -> str:
    """A worker's stderr without its start line (printed before it first reaches the store): the refusal."""
    return "".join(line for line in stderr.splitlines(keepends=True) if not WORKER_START.match(line))


def test_a_redis_database_index_that_does_not_exist_stops_the_worker(tmp_path: Path) -> None:
    require("redis")
    write_config(tmp_path, "redis://127.0.0.1:6379/99999")
    done = run_qctl(["work", "--sleep", "0.1"], tmp_path, timeout=30)  # a retry loop would time out here
    assert done.returncode == 2, done.stderr
    assert refusal(done.stderr) == ("error: qctl.toml: connections.main.url: Redis at 127.0.0.1:6379 refused: "
                                    "DB index is out of range\n")


@pytest.mark.parametrize(
    "credentials, reason",
    [(":wrong@", "invalid username-password pair or user is disabled"), ("", "it asks for a password and the URL gives none")],
)
def test_a_wrong_or_missing_redis_password_stops_the_worker(tmp_path: Path, guarded_redis: PrivateRedis,
                                                            credentials: str, reason: str) -> None:
    write_config(tmp_path, f"redis://{credentials}127.0.0.1:{guarded_redis.port}/0")
    for args in (["work", "--sleep", "0.1"], ["work", "--once", "--sleep", "0"]):
        done = run_qctl(args, tmp_path, timeout=30)
        assert done.returncode == 2, done.stderr
        assert refusal(done.stderr).startswith(f"error: qctl.toml: connections.main.url: Redis at 127.0.0.1:{guarded_redis.port} refused: ")
        assert reason in done.stderr and len(refusal(done.stderr).splitlines()) == 1, done.stderr


def test_the_right_password_works(tmp_path: Path, guarded_redis: PrivateRedis) -> None:
    write_config(tmp_path, f"redis://:{PASSWORD}@127.0.0.1:{guarded_redis.port}/0")
    done = run_qctl(["work", "--stop-when-empty", "--sleep", "0"], tmp_path, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("section, key", [("cache", "cache.url"), ("batching", "batching.url")])
def test_a_refusing_store_names_its_own_key(tmp_path: Path, section: str, key: str) -> None:
    require("redis")
    write_config(tmp_path, "redis://127.0.0.1:6379/99999", section)
    command = ["batches"] if section == "batching" else ["restart"]
    done = run_qctl(command, tmp_path, timeout=30)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"error: qctl.toml: {key}: Redis at 127.0.0.1:6379 refused: DB index is out of range\n"


def test_a_refused_dispatch_is_still_a_driver_error(tmp_path: Path) -> None:
    """Library code that catches DriverError around dispatch() keeps working; the CLI gets exit 2."""
    require("redis")
    from qctl.config import ConnectionConfig
    from qctl.drivers.redis import RedisDriver

    driver = RedisDriver(ConnectionConfig("q", "redis", "redis://127.0.0.1:6379/99999", url_key="here: q.url"))
    try:
        with pytest.raises(DriverError) as refused:
            driver.push("{}", "default")
    finally:
        driver.close()
    assert isinstance(refused.value, StoreRefusedError) and refused.value.exit_code == 2
    assert str(refused.value) == "here: q.url: Redis at 127.0.0.1:6379 refused: DB index is out of range"


def test_a_redis_that_is_only_down_is_still_retried(tmp_path: Path) -> None:
    write_config(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    worker = spawn_qctl(["work", "--sleep", "0.1"], tmp_path)
    try:
        wait_for(lambda: "retrying with backoff" in worker.stderr(), 30, message="the worker reporting Redis down")
        assert worker.alive()
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    assert "Connection refused" in worker.stderr() and "Traceback" not in worker.stderr()


@pytest.mark.parametrize(
    "kind, change, reason",
    [
        ("postgresql", {"database": "qctl_no_such_database"}, 'database "qctl_no_such_database" does not exist'),
        ("postgresql", {"username": "qctl_nobody", "password": "x"}, 'role "qctl_nobody" does not exist'),
        ("mariadb", {"database": "qctl_no_such_database"}, "Unknown database 'qctl_no_such_database'"),
        ("mariadb", {"username": "qctl_nobody", "password": "x"}, "Access denied for user 'qctl_nobody'"),
    ],
)
def test_a_database_that_refuses_the_url_stops_the_worker(tmp_path: Path, kind: str, change: dict[str, str],
                                                          reason: str) -> None:
    require(kind)
    from sqlalchemy.engine import make_url

    url = make_url(url_for(kind, tmp_path)).set(**change).render_as_string(hide_password=False)  # type: ignore[arg-type]
    other = url_for("sqlite", tmp_path)  # the stores stay usable: the queue's own refusal is what stops it
    (tmp_path / "qctl.toml").write_text(
        f'default = "main"\n[connections.main]\ndriver = "database"\nurl = "{url}"\n'
        f'[failed]\nurl = "{other}"\n[cache]\nurl = "{other}"\n[batching]\nurl = "{other}"\n')
    done = run_qctl(["work", "--sleep", "0.1"], tmp_path, timeout=30)
    assert done.returncode == 2, done.stderr
    assert refusal(done.stderr).startswith("error: qctl.toml: connections.main.url: database ") and " refused: " in done.stderr
    assert reason in done.stderr and len(refusal(done.stderr).splitlines()) == 1, done.stderr
    assert ":x@" not in done.stderr  # the password stays hidden


def test_a_database_server_that_is_down_is_still_retried(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    other = url_for("sqlite", tmp_path)
    (tmp_path / "qctl.toml").write_text(
        f'default = "main"\n[connections.main]\ndriver = "database"\nurl = "{url}"\n[failed]\nurl = "{other}"\n'
        f'[cache]\nurl = "{other}"\n')
    worker = spawn_qctl(["work", "--sleep", "0.1"], tmp_path)
    try:
        wait_for(lambda: "retrying with backoff" in worker.stderr(), 30, message="the worker reporting the database down")
        assert worker.alive()
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
