"""Find, parse and validate the configuration into frozen dataclasses.

Every error names the file, the key and what was expected, so a bad config is
one line on the terminal (exit 2), never a traceback.
"""

from __future__ import annotations

import base64
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qctl.errors import ConfigError
from qctl.limits import MAX_COUNT, MAX_SECONDS, out_of_bounds
from qctl.urls import check_url

DEFAULT_SQLITE_URL = "sqlite:///qctl.sqlite"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CONNECTION_DRIVERS = ("database", "redis", "sync", "null", "memory")
FAILED_DRIVERS = ("database", "redis", "null", "memory")
CACHE_DRIVERS = ("database", "redis", "memory")
BATCHING_DRIVERS = ("database", "redis", "memory")
"""`memory` everywhere is process-local and meant for tests (qctl.testing)."""
BUILT_IN = "built-in defaults"
DEFAULT_APP = ("jobs",)
"""`app` when none is configured anywhere: the package `qctl make:job` writes to."""


@dataclass(frozen=True)
class ConnectionConfig:
    name: str
    driver: str
    url: str | None = None
    table: str = "jobs"
    queue: str = "default"
    retry_after: int | None = 90
    after_commit: bool = False
    enqueue_in_transaction: bool = False
    block_for: float | None = None
    prefix: str = ""
    max_stalls: int = 3
    busy_poll_us: int = 100
    url_key: str = ""
    """Where the URL was set (`qctl.toml: connections.q.url`), for errors a server gives back about it."""


@dataclass(frozen=True)
class StoreConfig:
    driver: str
    url: str
    table: str
    url_key: str = ""


@dataclass(frozen=True)
class MetricsConfig:
    """`[metrics]`: workers record job metrics in the cache store unless `enabled = false`."""

    enabled: bool = True
    minutes_kept_hours: float = 24
    """How long the per-minute buckets are kept."""
    hours_kept_days: float = 7
    """How long the per-hour buckets are kept."""


@dataclass(frozen=True)
class Config:
    source: str = BUILT_IN
    default: str = "database"
    app: tuple[str, ...] = ()
    key: bytes | None = None
    connections: Mapping[str, ConnectionConfig] = field(default_factory=dict)
    failed: StoreConfig = StoreConfig("database", DEFAULT_SQLITE_URL, "failed_jobs")
    batching: StoreConfig = StoreConfig("database", DEFAULT_SQLITE_URL, "job_batches")
    cache: StoreConfig = StoreConfig("database", DEFAULT_SQLITE_URL, "cache")
    caches: Mapping[str, StoreConfig] = field(default_factory=dict)
    """Named cache stores (`[caches.NAME]`), for `unique_via()` and a middleware's `cache=`."""
    models_session: str | None = None
    metrics: MetricsConfig = MetricsConfig()
    declared: tuple[str, ...] = ()
    """Connections named in the file (the built-in ones are always available too)."""
    app_is_default: bool = False
    """No `app` was configured: `app` is DEFAULT_APP, and a project without that package is fine."""
    directory: Path | None = None
    """Where the file that was found lives: `app` modules import from there (None: built-in defaults)."""

    def connection(self, name: str | None = None) -> ConnectionConfig:
        """The named connection (the default one when no name is given)."""
        name = name or self.default
        if name not in self.connections:
            known = ", ".join(sorted(self.connections))
            raise ConfigError(
                f"{self.source}: connections.{name}: no such connection; expected one of {known}"
            )
        return self.connections[name]

    def with_app(self, *packages: str) -> Config:
        return replace(self, app=self.app + tuple(p for p in packages if p not in self.app))


def built_in_connections() -> dict[str, ConnectionConfig]:
    return {
        "database": ConnectionConfig("database", "database", DEFAULT_SQLITE_URL, url_key=f"{BUILT_IN}: connections.database.url"),
        "redis": ConnectionConfig("redis", "redis", DEFAULT_REDIS_URL, block_for=5, url_key=f"{BUILT_IN}: connections.redis.url"),
        "sync": ConnectionConfig("sync", "sync"),
        "null": ConnectionConfig("null", "null"),
    }


# --- locating the file -------------------------------------------------------------


def load(path: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> Config:
    """Load the config following the lookup order of the contract, then apply env overrides."""
    cwd = cwd or Path.cwd()
    source, raw, directory = _find_raw(path, cwd)
    config = parse(interpolate(raw, source, os.environ), source)
    if directory is not None:
        config = anchored(config, directory)
    return apply_env(config, os.environ)


def _find_raw(path: str | os.PathLike[str] | None, cwd: Path) -> tuple[str, dict[str, Any], Path | None]:
    """(label for messages, the parsed table, the file's directory): `--config`, `$QCTL_CONFIG`, then
    qctl.toml or [tool.qctl] in pyproject.toml in `cwd` and each parent up to the root or a `.git`."""
    explicit = path or os.environ.get("QCTL_CONFIG")
    if explicit:
        file = Path(explicit)
        if not file.is_absolute():
            file = cwd / file
        if not file.is_file():
            raise ConfigError(f"{explicit}: config file not found")
        return str(explicit), _read_toml(file, str(explicit)), file.resolve().parent
    for folder in (cwd, *cwd.parents):
        local = folder / "qctl.toml"
        if local.is_file():
            label = _label(local, cwd)
            return label, _read_toml(local, label), folder
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            label = _label(pyproject, cwd)
            tool = _read_toml(pyproject, label).get("tool", {})
            if isinstance(tool, dict) and isinstance(tool.get("qctl"), dict):
                return f"{label} [tool.qctl]", tool["qctl"], folder
        if (folder / ".git").exists():
            break
    return BUILT_IN, {}, None


def _label(file: Path, cwd: Path) -> str:
    """The file as messages name it: relative to the current directory (`qctl.toml`, `../qctl.toml`)."""
    try:
        return os.path.relpath(file, cwd)
    except ValueError:  # another drive on Windows
        return str(file)


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(raw: Any, source: str, env: Mapping[str, str], where: str = "") -> Any:
    """`${VAR}` and `${VAR:-default}` in every string value, from `env`; `$$` is a literal `$`.
    An unset variable without a default is a config error naming the key and the variable."""
    if isinstance(raw, dict):
        return {k: interpolate(v, source, env, f"{where}{k}." if isinstance(v, dict) else f"{where}{k}") for k, v in raw.items()}
    if isinstance(raw, list):
        return [interpolate(v, source, env, where) for v in raw]
    if not isinstance(raw, str) or "$" not in raw:
        return raw

    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{source}: {where}: ${{{name}}} is not set (set it, or write ${{{name}:-default}})")

    return _VARIABLE.sub(value, raw)


def anchored(config: Config, directory: Path) -> Config:
    """Relative SQLite paths made absolute under the config file's directory."""
    connections = {
        name: replace(c, url=_anchor_url(c.url, directory)) if c.driver == "database" and c.url else c
        for name, c in config.connections.items()
    }

    def store(s: StoreConfig) -> StoreConfig:
        return replace(s, url=_anchor_url(s.url, directory) or s.url) if s.driver == "database" else s

    return replace(
        config, connections=connections, failed=store(config.failed), batching=store(config.batching),
        cache=store(config.cache), caches={name: store(c) for name, c in config.caches.items()}, directory=directory,
    )


_SQLITE_URL = re.compile(r"\A(sqlite(?:\+\w+)?:///)([^?]*)(\?.*)?\Z")


def _anchor_url(url: str | None, directory: Path) -> str | None:
    found = _SQLITE_URL.match(url or "")
    if found is None:
        return url
    prefix, path, query = found.group(1), found.group(2), found.group(3) or ""
    if not path or path.startswith("/") or path == ":memory:" or path.startswith("file:"):
        return url
    return f"{prefix}{(directory / path).as_posix()}{query}"


def _read_toml(file: Path, label: str) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read: {exc}") from None


# --- validation --------------------------------------------------------------------

MAX_BUSY_POLL_US = 10_000

_CONNECTION_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "driver": (str, "one of " + ", ".join(CONNECTION_DRIVERS)),
    "url": (str, "a URL string"),
    "table": (str, "a table name"),
    "queue": (str, "a queue name"),
    "retry_after": (int, "a whole number of seconds"),
    "after_commit": (bool, "true or false"),
    "enqueue_in_transaction": (bool, "true or false"),
    "block_for": ((int, float), "a number of seconds (0 = forever)"),
    "prefix": (str, "a string"),
    "max_stalls": (int, "a whole number"),
    "busy_poll_us": (int, "a whole number of microseconds (0 = off)"),
}
_CONNECTION_BOUNDS: dict[str, tuple[float, float, str]] = {
    "retry_after": (1, MAX_SECONDS, "seconds"),
    "max_stalls": (1, MAX_COUNT, ""),
    "block_for": (0, MAX_SECONDS, "seconds"),
    "busy_poll_us": (0, MAX_BUSY_POLL_US, "microseconds"),
}
_STORE_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "driver": (str, "a driver name"),
    "url": (str, "a URL string"),
    "table": (str, "a table name"),
}
_TOP_KEYS = ("default", "app", "key", "connections", "failed", "batching", "cache", "caches", "models", "metrics")


def parse(raw: Mapping[str, Any], source: str = BUILT_IN) -> Config:
    """Validate a parsed TOML mapping; every error names `source`, the key and the expectation."""
    _reject_unknown(raw, _TOP_KEYS, source, "")
    default = _typed(raw, "default", str, "a connection name", source, "") or "database"
    app = _parse_app(raw.get("app", list(DEFAULT_APP)), source)
    key = parse_key(raw["key"], source, "key") if "key" in raw else None  # key = "" is an error, not "off"
    connections = built_in_connections()
    user_connections = raw.get("connections", {})
    if not isinstance(user_connections, dict):
        raise ConfigError(f"{source}: connections: expected a table of connections")
    for name, section in user_connections.items():
        connections[name] = _parse_connection(name, section, source, connections.get(name))
    store_url = _default_store_url(connections, default)
    redis_home = _redis_home(connections, default, tuple(user_connections))
    models = raw.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"{source}: models: expected a table")
    _reject_unknown(models, ("session",), source, "models.")
    session = _typed(models, "session", str, "an import path like 'myapp.db:Session'", source, "models.")
    config = Config(
        source=source,
        default=default,
        app=app,
        key=key,
        connections=connections,
        failed=_parse_store(raw, "failed", FAILED_DRIVERS, store_url, "failed_jobs", source, redis_home),
        batching=_parse_store(raw, "batching", BATCHING_DRIVERS, store_url, "job_batches", source, redis_home),
        cache=_parse_store(raw, "cache", CACHE_DRIVERS, store_url, "cache", source, redis_home),
        caches=_parse_caches(raw.get("caches", {}), store_url, source, redis_home),
        models_session=session,
        metrics=_parse_metrics(raw.get("metrics", {}), source),
        declared=tuple(user_connections),
        app_is_default="app" not in raw,
    )
    config.connection(default)  # the default must name a real connection
    return config


def _parse_metrics(section: Any, source: str) -> MetricsConfig:
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: metrics: expected a table")
    _reject_unknown(section, ("enabled", "minutes_kept_hours", "hours_kept_days"), source, "metrics.")
    enabled = _typed(section, "enabled", bool, "true or false", source, "metrics.")
    hours = _typed(section, "minutes_kept_hours", (int, float), "a number of hours", source, "metrics.")
    days = _typed(section, "hours_kept_days", (int, float), "a number of days", source, "metrics.")
    check_bounds(hours, 1, 24 * 31, "hours", f"{source}: metrics.minutes_kept_hours")
    check_bounds(days, 1, 3660, "days", f"{source}: metrics.hours_kept_days")
    default = MetricsConfig()
    return MetricsConfig(default.enabled if enabled is None else enabled,
                         default.minutes_kept_hours if hours is None else float(hours),
                         default.hours_kept_days if days is None else float(days))


def _parse_app(value: Any, source: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{source}: app: expected a list of module names, got {value!r}")
    return tuple(value)


def _parse_connection(name: str, section: Any, source: str, built_in: ConnectionConfig | None = None) -> ConnectionConfig:
    """A `[connections.NAME]` table; one that redefines a built-in connection (`redis`, `database`)
    without naming another driver starts from the built-in's values and overrides what it sets."""
    where = f"connections.{name}."
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: connections.{name}: expected a table")
    _reject_unknown(section, tuple(_CONNECTION_KEYS), source, where)
    values = {k: _typed(section, k, t, e, source, where) for k, (t, e) in _CONNECTION_KEYS.items()}
    if built_in is not None and values["driver"] in (None, built_in.driver):
        for key in values:
            if key not in section:
                values[key] = getattr(built_in, key)
    driver = values["driver"]
    if driver is None:
        raise ConfigError(f"{source}: {where}driver: missing; expected {_CONNECTION_KEYS['driver'][1]}")
    if driver not in CONNECTION_DRIVERS:
        raise ConfigError(
            f"{source}: {where}driver: unknown driver {driver!r}; expected one of "
            + ", ".join(CONNECTION_DRIVERS)
        )
    if driver in ("database", "redis") and not values["url"]:
        raise ConfigError(f"{source}: {where}url: missing; the {driver} driver needs a URL")
    if driver in ("database", "redis"):
        check_url(driver, values["url"], f"{source}: {where}")
    if values["enqueue_in_transaction"] and driver != "database":
        raise ConfigError(
            f"{source}: {where}enqueue_in_transaction: only a database connection can write its jobs "
            f"inside the application's transaction (this one is {driver})"
        )
    for key, (low, high, unit) in _CONNECTION_BOUNDS.items():
        check_bounds(values[key], low, high, unit, f"{source}: {where}{key}")
    kwargs = {k: v for k, v in values.items() if v is not None}
    return ConnectionConfig(name=name, url_key=f"{source}: {where}url", **kwargs)


def _parse_store(
    raw: Mapping[str, Any], section_name: str, drivers: tuple[str, ...], url: str, table: str, source: str,
    redis_home: RedisHome | None = None,
) -> StoreConfig:
    """A `[failed]`, `[batching]`, `[cache]` or `[caches.NAME]` table. With no section at all, the
    cache follows a Redis default connection, and so do the failed and batch stores when no
    connection uses a database (see `RedisHome`)."""
    if section_name not in raw and redis_home is not None and redis_home.keeps_by_default(section_name):
        return redis_home.store(table)
    section = raw.get(section_name, {})
    where = f"{section_name}."
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: {section_name}: expected a table")
    _reject_unknown(section, tuple(_STORE_KEYS), source, where)
    driver = _typed(section, "driver", str, "", source, where) or drivers[0]
    if driver not in drivers:
        raise ConfigError(
            f"{source}: {where}driver: unknown driver {driver!r}; expected one of " + ", ".join(drivers)
        )
    store_url = _typed(section, "url", str, "a URL string", source, where)
    store_table = _typed(section, "table", str, "a table name", source, where) or table
    if store_url is None and driver == "redis":
        return _redis_store_without_url(section_name, store_table, redis_home, source, where)
    store_url = url if store_url is None else store_url
    if driver != "null":
        check_url(driver, store_url, f"{source}: {where}", redis_driver="redis" in drivers)
    return StoreConfig(driver, store_url, store_table, f"{source}: {where}url")


def _redis_store_without_url(section_name: str, table: str, home: RedisHome | None, source: str,
                             where: str) -> StoreConfig:
    """A Redis store with no `url` of its own shares the Redis connection (its URL and key prefix);
    failed jobs are never sent to a guessed server, the other stores keep the local default."""
    if home is not None:
        return home.store(table)
    if section_name == "failed":
        raise ConfigError(f"{source}: failed.url: missing; the redis failed store needs a url, or a Redis "
                          "connection to share (make it the default connection)")
    return StoreConfig("redis", DEFAULT_REDIS_URL, table, f"{source}: {where}url")


@dataclass(frozen=True)
class RedisHome:
    """The Redis connection that stores without a URL of their own share."""

    connection: ConnectionConfig
    is_default: bool
    """It is the default connection: the cache defaults to it."""
    sql_free: bool
    """It is the default connection and no connection uses a database: the failed and batch stores
    default to it too, so a Redis-only deployment needs no SQL at all."""

    def keeps_by_default(self, section_name: str) -> bool:
        return self.is_default if section_name == "cache" else self.sql_free

    def store(self, table: str) -> StoreConfig:
        assert self.connection.url is not None
        return StoreConfig("redis", self.connection.url, self.connection.prefix + table, self.connection.url_key)


def _redis_home(connections: Mapping[str, ConnectionConfig], default: str, declared: tuple[str, ...]) -> RedisHome | None:
    """The default connection when it is Redis, else the one declared Redis connection (None: none, or several)."""
    preferred = connections.get(default)
    if preferred is not None and preferred.driver == "redis":
        sql_free = not any(connections[name].driver == "database" for name in declared)
        return RedisHome(preferred, True, sql_free)
    declared_redis = [connections[name] for name in declared if connections[name].driver == "redis"]
    return RedisHome(declared_redis[0], False, False) if len(declared_redis) == 1 else None


def _parse_caches(sections: Any, url: str, source: str, redis_home: RedisHome | None) -> dict[str, StoreConfig]:
    if not isinstance(sections, dict):
        raise ConfigError(f"{source}: caches: expected a table of named cache stores ([caches.NAME])")
    return {name: _parse_store(sections, name, CACHE_DRIVERS, url, "cache", f"{source}: caches", redis_home)
            for name in sections}


def _default_store_url(connections: Mapping[str, ConnectionConfig], default: str) -> str:
    """Stores live beside the queue by default: the default connection's database if it has one."""
    preferred = connections.get(default)
    if preferred and preferred.driver == "database" and preferred.url:
        return preferred.url
    for connection in connections.values():
        if connection.driver == "database" and connection.url:
            return connection.url
    return DEFAULT_SQLITE_URL


def _typed(
    section: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    expected: str,
    source: str,
    where: str,
) -> Any:
    if key not in section:
        return None
    value = section[key]
    # bool is an int in Python; a TOML `true` is never a number of seconds.
    wrong_bool = isinstance(value, bool) and kind is not bool
    if wrong_bool or not isinstance(value, kind):
        raise ConfigError(f"{source}: {where}{key}: expected {expected}, got {value!r}")
    return value


def check_bounds(value: Any, low: float, high: float, unit: str, where: str) -> None:
    """A number from the config or the environment must be finite and from `low` to `high` (None: unset)."""
    problem = None if value is None else out_of_bounds(value, low, high, unit)
    if problem:
        raise ConfigError(f"{where}: {problem}")


def _reject_unknown(section: Mapping[str, Any], known: tuple[str, ...], source: str, where: str) -> None:
    for key in section:
        if key not in known:
            raise ConfigError(
                f"{source}: {where}{key}: unknown key; expected one of " + ", ".join(known)
            )


def parse_key(value: Any, source: str, where: str) -> bytes:
    """An app key is `base64:` followed by at least 16 random bytes, as `qctl key:generate` prints."""
    if value in ("", False, 0, None):
        raise ConfigError(
            f"{source}: {where}: is empty; a key must be 'base64:…' (run `qctl key:generate`), "
            "and signing is off only when no key is set at all"
        )
    if not isinstance(value, str) or not value.startswith("base64:"):
        raise ConfigError(f"{source}: {where}: expected 'base64:…' (run `qctl key:generate`)")
    try:
        key = base64.b64decode(value[len("base64:"):], validate=True)
    except ValueError:
        raise ConfigError(f"{source}: {where}: not valid base64") from None
    if len(key) < 16:
        raise ConfigError(f"{source}: {where}: expected at least 16 bytes, got {len(key)}")
    return key


def apply_env(config: Config, env: Mapping[str, str]) -> Config:
    """QCTL_CONNECTION, QCTL_FAILED_DRIVER and QCTL_KEY win over the file."""
    if env.get("QCTL_CONNECTION"):
        config = replace(config, default=env["QCTL_CONNECTION"])
        try:
            config.connection()
        except ConfigError:
            known = ", ".join(sorted(config.connections))
            raise ConfigError(
                f"QCTL_CONNECTION: no connection named {config.default!r}; expected one of {known}"
            ) from None
    if env.get("QCTL_FAILED_DRIVER"):
        driver = env["QCTL_FAILED_DRIVER"]
        if driver not in FAILED_DRIVERS:
            raise ConfigError(f"QCTL_FAILED_DRIVER: expected one of {', '.join(FAILED_DRIVERS)}, got {driver!r}")
        config = replace(config, failed=_failed_driver_from_env(config, driver))
    if "QCTL_KEY" in env:  # set but empty is a mistake, not a way to turn signing off
        config = replace(config, key=parse_key(env["QCTL_KEY"], "QCTL_KEY", "value"))
    return config


def _failed_driver_from_env(config: Config, driver: str) -> StoreConfig:
    """QCTL_FAILED_DRIVER=redis moves the failed store to the Redis connection unless it is there already."""
    if driver != "redis" or config.failed.driver == "redis":
        return replace(config.failed, driver=driver)
    home = _redis_home(config.connections, config.default, config.declared)
    if home is None:
        raise ConfigError("QCTL_FAILED_DRIVER: redis needs a Redis connection to share (make it the default "
                          'connection), or [failed] driver = "redis" with a url')
    return home.store("failed_jobs" if config.failed.table == "failed_jobs" else config.failed.table)
