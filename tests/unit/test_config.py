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
        ('[failed]\ndriver = "redis"\n', "qctl.toml: failed.url: missing; the redis failed store needs a url, or a Redis connection"),
        ('[connections.r]\ndriver = "redis"\nurl = "redis://"\nbusy_poll_us = -1\n', "qctl.toml: connections.r.busy_poll_us: expected 0 to 10000 microseconds, got -1"),
        ('[connections.r]\ndriver = "redis"\nurl = "redis://"\nbusy_poll_us = 0.5\n', "qctl.toml: connections.r.busy_poll_us: expected a whole number of microseconds (0 = off), got 0.5"),
        ('[connections.r]\ndriver = "redis"\nurl = "redis://"\nblock_for = inf\n', "qctl.toml: connections.r.block_for: expected 0 to 315360000 seconds, got inf"),
        ('[connections.r]\ndriver = "redis"\nurl = "redis://"\nblock_for = nan\n', "qctl.toml: connections.r.block_for: expected 0 to 315360000 seconds, got nan"),
        ('[connections.r]\ndriver = "redis"\nurl = "redis://"\nblock_for = -1\n', "qctl.toml: connections.r.block_for: expected 0 to 315360000 seconds, got -1"),
        ('[connections.q]\ndriver = "database"\nurl = "sqlite://"\nretry_after = 99999999999999999\n', "qctl.toml: connections.q.retry_after: expected 1 to 315360000 seconds, got 99999999999999999"),
        ('[connections.q]\ndriver = "database"\nurl = "sqlite://"\nretry_after = 0\n', "qctl.toml: connections.q.retry_after: expected 1 to 315360000 seconds, got 0"),
        ('[connections.q]\ndriver = "database"\nurl = "sqlite://"\nmax_stalls = 2147483648\n', "qctl.toml: connections.q.max_stalls: expected 1 to 2147483647, got 2147483648"),
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


@pytest.mark.parametrize("value", ['""', "false", "0"])
def test_a_present_key_that_is_empty_is_an_error_not_signing_turned_off(tmp_path: Path, value: str) -> None:
    (tmp_path / "qctl.toml").write_text(f"key = {value}\n")
    with pytest.raises(ConfigError, match="key: is empty") as refused:
        config.load(cwd=tmp_path)
    assert "\n" not in str(refused.value)


def test_an_empty_qctl_key_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCTL_KEY", "")
    with pytest.raises(ConfigError, match="QCTL_KEY: value: is empty"):
        config.load(cwd=tmp_path)


def test_the_file_is_found_in_a_parent_and_relative_sqlite_paths_resolve_beside_it(tmp_path: Path) -> None:
    (tmp_path / "qctl.toml").write_text(
        'app = ["myapp"]\n[connections.database]\nurl = "sqlite:///data/q.sqlite"\n[failed]\nurl = "sqlite:///f.sqlite?timeout=5"\n'
    )
    deeper = tmp_path / "myapp" / "jobs"
    deeper.mkdir(parents=True)
    loaded = config.load(cwd=deeper)
    assert loaded.source == str(Path("..") / ".." / "qctl.toml")
    assert loaded.directory == tmp_path and loaded.app == ("myapp",)
    assert loaded.connection("database").url == f"sqlite:///{(tmp_path / 'data' / 'q.sqlite').as_posix()}"
    assert loaded.failed.url == f"sqlite:///{(tmp_path / 'f.sqlite').as_posix()}?timeout=5"
    assert loaded.cache.url == f"sqlite:///{(tmp_path / 'data' / 'q.sqlite').as_posix()}"  # beside the default connection


def test_the_search_stops_at_a_git_folder(tmp_path: Path) -> None:
    (tmp_path / "qctl.toml").write_text('default = "sync"\n')
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "src").mkdir()
    assert config.load(cwd=project / "src").source == config.BUILT_IN
    (project / "pyproject.toml").write_text('[tool.qctl]\ndefault = "null"\n')
    assert config.load(cwd=project / "src").default == "null"


def test_absolute_and_memory_sqlite_urls_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "qctl.toml").write_text(
        '[connections.a]\ndriver = "database"\nurl = "sqlite:////abs/q.sqlite"\n'
        '[connections.b]\ndriver = "database"\nurl = "sqlite:///:memory:"\n'
    )
    loaded = config.load(cwd=tmp_path)
    assert loaded.connection("a").url == "sqlite:////abs/q.sqlite"
    assert loaded.connection("b").url == "sqlite:///:memory:"


def test_environment_variables_in_string_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCTL_TEST_DB", "postgresql+psycopg://u@db/app")
    monkeypatch.delenv("QCTL_TEST_REDIS", raising=False)
    (tmp_path / "qctl.toml").write_text(
        'default = "pg"\n[connections.pg]\ndriver = "database"\nurl = "${QCTL_TEST_DB}"\nprefix = "$${literal}"\n'
        '[connections.r]\ndriver = "redis"\nurl = "${QCTL_TEST_REDIS:-redis://127.0.0.1:6379/3}"\n'
    )
    loaded = config.load(cwd=tmp_path)
    assert loaded.connection("pg").url == "postgresql+psycopg://u@db/app"
    assert loaded.connection("pg").prefix == "${literal}"
    assert loaded.connection("r").url == "redis://127.0.0.1:6379/3"


def test_an_unset_variable_is_a_one_line_error_naming_it_and_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QCTL_TEST_UNSET", raising=False)
    (tmp_path / "qctl.toml").write_text('[connections.q]\ndriver = "database"\nurl = "${QCTL_TEST_UNSET}"\n')
    with pytest.raises(ConfigError, match=r"qctl.toml: connections.q.url: \$\{QCTL_TEST_UNSET\} is not set") as refused:
        config.load(cwd=tmp_path)
    assert "\n" not in str(refused.value)


def test_redefining_a_built_in_connection_merges_over_it(tmp_path: Path) -> None:
    (tmp_path / "qctl.toml").write_text('[connections.redis]\nurl = "redis://cache.internal:6379/2"\n'
                                       '[connections.database]\ntable = "queue_jobs"\n')
    loaded = config.load(cwd=tmp_path)
    redis = loaded.connection("redis")
    assert (redis.driver, redis.url, redis.block_for) == ("redis", "redis://cache.internal:6379/2", 5)
    database = loaded.connection("database")
    assert (database.driver, database.table) == ("database", "queue_jobs")
    assert database.url == f"sqlite:///{(tmp_path / 'qctl.sqlite').as_posix()}"


def test_with_no_app_anywhere_app_is_jobs(tmp_path: Path) -> None:
    assert config.load(cwd=tmp_path).app == ("jobs",)
    (tmp_path / "qctl.toml").write_text("app = []\n")
    assert config.load(cwd=tmp_path).app == ()


REDIS_ONLY = 'default = "q"\n[connections.q]\ndriver = "redis"\nurl = "redis://cache.internal:6380/3"\nprefix = "shop:"\n'


def test_a_redis_only_config_keeps_every_store_in_that_redis(tmp_path: Path) -> None:
    (tmp_path / "qctl.toml").write_text(REDIS_ONLY)
    loaded = config.load(cwd=tmp_path)
    stores = {"cache": loaded.cache, "failed": loaded.failed, "batching": loaded.batching}
    assert {name: (s.driver, s.url, s.table) for name, s in stores.items()} == {
        "cache": ("redis", "redis://cache.internal:6380/3", "shop:cache"),
        "failed": ("redis", "redis://cache.internal:6380/3", "shop:failed_jobs"),
        "batching": ("redis", "redis://cache.internal:6380/3", "shop:job_batches"),
    }
    assert loaded.failed.url_key == "qctl.toml: connections.q.url"  # a refused URL names the key to fix


def test_beside_a_database_connection_only_the_cache_follows_a_redis_default(tmp_path: Path) -> None:
    (tmp_path / "qctl.toml").write_text(REDIS_ONLY + '[connections.db]\ndriver = "database"\nurl = "sqlite:///db.sqlite"\n')
    loaded = config.load(cwd=tmp_path)
    assert (loaded.cache.driver, loaded.cache.table) == ("redis", "shop:cache")
    assert loaded.failed.driver == "database" and loaded.batching.driver == "database"


def test_a_store_section_written_wins_and_a_redis_store_without_url_shares_the_connection(tmp_path: Path) -> None:
    (tmp_path / "qctl.toml").write_text(REDIS_ONLY + '[cache]\ndriver = "database"\n[failed]\ndriver = "redis"\ntable = "dead"\n')
    loaded = config.load(cwd=tmp_path)
    assert loaded.cache.driver == "database" and loaded.batching.driver == "redis"
    assert (loaded.failed.driver, loaded.failed.url, loaded.failed.table) == ("redis", "redis://cache.internal:6380/3", "shop:dead")


def test_qctl_failed_driver_redis_moves_the_failed_store_to_the_redis_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "qctl.toml").write_text('[connections.q]\ndriver = "redis"\nurl = "redis://r:6379/1"\nprefix = "p:"\n')
    monkeypatch.setenv("QCTL_FAILED_DRIVER", "redis")
    loaded = config.load(cwd=tmp_path)
    assert (loaded.failed.driver, loaded.failed.url, loaded.failed.table) == ("redis", "redis://r:6379/1", "p:failed_jobs")
    (tmp_path / "qctl.toml").write_text('[connections.a]\ndriver = "redis"\nurl = "redis://a"\n'
                                        '[connections.b]\ndriver = "redis"\nurl = "redis://b"\n')
    with pytest.raises(ConfigError, match="QCTL_FAILED_DRIVER: redis needs a Redis connection"):
        config.load(cwd=tmp_path)
