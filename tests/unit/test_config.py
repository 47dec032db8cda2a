"""Config lookup order, env overrides and one-line errors naming file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from qctl import config
from qctl.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QCTL_CONFIG", "QCTL_CONNECTION", "QCTL_FAILED_DRIVER", "QCTL_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_no_config_at_all_means_sqlite_database(tmp_path: Path) -> None:
    loaded = config.load(cwd=tmp_path)
    assert loaded.source == config.BUILT_IN
    assert loaded.connection().driver == "database"
    assert loaded.connection().url == "sqlite:///qctl.sqlite"
    assert loaded.failed.url == "sqlite:///qctl.sqlite" and loaded.failed.table == "failed_jobs"
    assert set(loaded.connections) >= {"database", "redis", "sync", "null"}


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.qctl]\ndefault = "sync"\n')
    assert config.load(cwd=tmp_path).default == "sync"
    (tmp_path / "qctl.toml").write_text('default = "null"\n')
    assert config.load(cwd=tmp_path).default == "null"
    other = tmp_path / "other.toml"
    other.write_text('default = "redis"\n')
    monkeypatch.setenv("QCTL_CONFIG", str(other))
    assert config.load(cwd=tmp_path).default == "redis"
    explicit = tmp_path / "explicit.toml"
    explicit.write_text('default = "database"\n')
    assert config.load(explicit, cwd=tmp_path).default == "database"


def test_pyproject_without_tool_qctl_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert config.load(cwd=tmp_path).source == config.BUILT_IN


def test_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCTL_CONNECTION", "sync")
    monkeypatch.setenv("QCTL_FAILED_DRIVER", "null")
    monkeypatch.setenv("QCTL_KEY", "base64:" + "A" * 44)
    loaded = config.load(cwd=tmp_path)
    assert loaded.default == "sync" and loaded.failed.driver == "null" and loaded.key is not None


def test_connections_and_store_defaults(tmp_path: Path) -> None:
    (tmp_path / "qctl.toml").write_text(
        'default = "pg"\napp = ["myapp.jobs"]\n[connections.pg]\ndriver = "database"\n'
        'url = "postgresql://postgres@localhost/test"\nretry_after = 30\nqueue = "emails"\n'
    )
    loaded = config.load(cwd=tmp_path)
    assert loaded.app == ("myapp.jobs",)
    pg = loaded.connection()
    assert (pg.retry_after, pg.queue, pg.table) == (30, "emails", "jobs")
    assert loaded.failed.url == pg.url  # stores live beside the default queue's database
    assert loaded.connection("redis").busy_poll_us == 100
    assert loaded.declared == ("pg",)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[connections.q]\ndriver = "rabbit"\n', "qctl.toml: connections.q.driver: unknown driver 'rabbit'; expected one of database, redis, sync, null"),
        ('[connections.q]\ndriver = "database"\n', "qctl.toml: connections.q.url: missing; the database driver needs a URL"),
        ('[connections.q]\ndriver = "database"\nurl = "sqlite://"\nretry_after = "x"\n', "qctl.toml: connections.q.retry_after: expected a whole number of seconds, got 'x'"),
        ('[connections.q]\ndriver = "database"\nurl = "sqlite://"\nretry_after = true\n', "qctl.toml: connections.q.retry_after: expected a whole number of seconds, got True"),
        ('[connections.q]\nurl = "sqlite://"\n', "qctl.toml: connections.q.driver: missing"),
        ('[connections.q]\ndriver = "database"\nurl = "sqlite://"\nretry_afer = 3\n', "qctl.toml: connections.q.retry_afer: unknown key"),
        ('default = "nope"\n', "qctl.toml: connections.nope: no such connection"),
        ('app = "x"\napp2 = 1\n', "qctl.toml: app2: unknown key"),
        ('app = [1]\n', "qctl.toml: app: expected a list of module names"),
        ('key = "plain"\n', "qctl.toml: key: expected 'base64:…'"),
        ('[failed]\ndriver = "dynamo"\n', "qctl.toml: failed.driver: unknown driver 'dynamo'"),
        ('[connections.r]\ndriver = "redis"\nurl = "redis://"\nbusy_poll_us = -1\n', "qctl.toml: connections.r.busy_poll_us: expected 0 to 10000 microseconds, got -1"),
        ('[connections.r]\ndriver = "redis"\nurl = "redis://"\nbusy_poll_us = 0.5\n', "qctl.toml: connections.r.busy_poll_us: expected a whole number of microseconds (0 = off), got 0.5"),
        ("this is = not toml [", "qctl.toml: invalid TOML"),
    ],
)
def test_bad_config_is_one_line_naming_file_key_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "qctl.toml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(cwd=tmp_path)
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load("nope.toml", cwd=tmp_path)


def test_bad_env_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCTL_FAILED_DRIVER", "s3")
    with pytest.raises(ConfigError, match="QCTL_FAILED_DRIVER"):
        config.load(cwd=tmp_path)
    monkeypatch.delenv("QCTL_FAILED_DRIVER")
    monkeypatch.setenv("QCTL_CONNECTION", "ghost")
    with pytest.raises(ConfigError, match="QCTL_CONNECTION: no connection named 'ghost'"):
        config.load(cwd=tmp_path)


def test_unknown_connection_named_later(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="connections.ghost: no such connection"):
        config.load(cwd=tmp_path).connection("ghost")
