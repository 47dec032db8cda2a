"""A URL that does not suit its driver is refused when the config is read: one line naming the key."""

from __future__ import annotations

import tomllib

import pytest

from qctl import config
from qctl.errors import ConfigError


def connection(driver: str, url: str) -> str:
    return f'[connections.q]\ndriver = "{driver}"\nurl = "{url}"\n'


@pytest.mark.parametrize(
    "text, expected",
    [
        (connection("redis", "postgresql://app:secret@db/app"),
         "connections.q.url: 'postgresql://app:***@db/app' is a database URL, but the driver is redis"),
        (connection("redis", "mysql+pymysql://root@db/app"), "connections.q.url: 'mysql+pymysql://root@db/app' is a database URL"),
        (connection("redis", "http://cache:6379"), "connections.q.url: 'http://cache:6379': expected a redis://, rediss:// or unix:// URL"),
        (connection("redis", "127.0.0.1:6379"), "connections.q.url: '127.0.0.1:6379': expected a redis://"),
        (connection("redis", "redis://127.0.0.1:6379/abc"), "connections.q.url: 'redis://127.0.0.1:6379/abc': the database index must be a whole number"),
        (connection("redis", "redis://127.0.0.1:6379/0?db=x"), "connections.q.url: 'redis://127.0.0.1:6379/0?db=x': the database index must be a whole number like /0, got 'x'"),
        (connection("redis", "redis://127.0.0.1:port/0"), "connections.q.url: 'redis://127.0.0.1:port/0': Port could not be cast"),
        (connection("database", "redis://127.0.0.1:6379/0"),
         "connections.q.url: 'redis://127.0.0.1:6379/0' is a Redis URL, but the driver is database; use driver = \"redis\""),
        (connection("database", "rabbit://broker"), "connections.q.url: 'rabbit://broker': expected a sqlite://, postgresql://"),
        (connection("database", "qctl.sqlite"), "connections.q.url: 'qctl.sqlite': expected a sqlite://"),
        ('[cache]\ndriver = "redis"\nurl = "sqlite:///c.sqlite"\n', "cache.url: 'sqlite:///c.sqlite' is a database URL, but the driver is redis"),
        ('[cache]\nurl = "rediss://cache:6380/0"\n', "cache.url: 'rediss://cache:6380/0' is a Redis URL, but the driver is database"),
        ('[failed]\nurl = "redis://127.0.0.1/0"\n', "failed.url: 'redis://127.0.0.1/0' is a Redis URL, but the driver is database; use driver = \"redis\" or an SQL URL"),
        ('[batching]\ndriver = "redis"\nurl = "postgres://x/y"\n', "batching.url: 'postgres://x/y' is a database URL"),
        ('[caches.locks]\ndriver = "redis"\nurl = "unix"\n', "caches: locks.url: 'unix': expected a redis://"),
    ],
)
def test_a_url_that_does_not_suit_its_driver_names_the_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config.parse(tomllib.loads(text), "qctl.toml")
    assert str(refused.value).startswith(f"qctl.toml: {expected}"), str(refused.value)
    assert "\n" not in str(refused.value) and "secret" not in str(refused.value)


@pytest.mark.parametrize(
    "text",
    [
        connection("redis", "redis://127.0.0.1:6379"), connection("redis", "redis://:pw@127.0.0.1:6379/15"),
        connection("redis", "rediss://cache.example:6380/0?ssl_cert_reqs=none"), connection("redis", "unix:///tmp/redis.sock?db=2"),
        connection("database", "sqlite://"), connection("database", "sqlite:///qctl.sqlite"),
        connection("database", "postgresql+psycopg://postgres@127.0.0.1/test"), connection("database", "mariadb://root@db/test"),
        '[failed]\ndriver = "null"\nurl = "anything"\n',
    ],
)
def test_urls_that_suit_their_driver_pass(text: str) -> None:
    config.parse(tomllib.loads(text), "qctl.toml")


def test_the_url_key_travels_with_the_config() -> None:
    loaded = config.parse({"connections": {"q": {"driver": "redis", "url": "redis://h/0"}}, "cache": {"driver": "redis"}}, "qctl.toml")
    assert loaded.connection("q").url_key == "qctl.toml: connections.q.url"
    assert (loaded.cache.url, loaded.cache.url_key) == ("redis://h/0", "qctl.toml: connections.q.url")  # shared, no url of its own
    written = config.parse({"cache": {"driver": "redis", "url": "redis://c/1"}}, "qctl.toml")
    assert written.cache.url_key == "qctl.toml: cache.url"
    assert loaded.connection("redis").url_key == "built-in defaults: connections.redis.url"
