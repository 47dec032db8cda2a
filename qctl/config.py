"""Find, parse and validate the configuration into frozen dataclasses.

Every error names the file, the key and what was expected, so a bad config is
one line on the terminal (exit 2), never a traceback.
"""

from __future__ import annotations

import base64
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qctl.errors import ConfigError

DEFAULT_SQLITE_URL = "sqlite:///qctl.sqlite"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CONNECTION_DRIVERS = ("database", "redis", "sync", "null")
FAILED_DRIVERS = ("database", "null")
CACHE_DRIVERS = ("database", "redis")
BATCHING_DRIVERS = ("database", "redis")
BUILT_IN = "built-in defaults"


@dataclass(frozen=True)
class ConnectionConfig:
    name: str
    driver: str
    url: str | None = None
    table: str = "jobs"
    queue: str = "default"
    retry_after: int | None = 90
    after_commit: bool = False
    block_for: float | None = None
    prefix: str = ""
    max_stalls: int = 3
    busy_poll_us: int = 100


@dataclass(frozen=True)
class StoreConfig:
    driver: str
    url: str
    table: str


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
    declared: tuple[str, ...] = ()
    """Connections named in the file (the built-in ones are always available too)."""

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
        "database": ConnectionConfig("database", "database", DEFAULT_SQLITE_URL),
        "redis": ConnectionConfig("redis", "redis", DEFAULT_REDIS_URL, block_for=5),
        "sync": ConnectionConfig("sync", "sync"),
        "null": ConnectionConfig("null", "null"),
    }


# --- locating the file -------------------------------------------------------------


def load(path: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> Config:
    """Load the config following the lookup order of the contract, then apply env overrides."""
    cwd = cwd or Path.cwd()
    source, raw = _find_raw(path, cwd)
    config = parse(raw, source)
    return apply_env(config, os.environ)


def _find_raw(path: str | os.PathLike[str] | None, cwd: Path) -> tuple[str, dict[str, Any]]:
    explicit = path or os.environ.get("QCTL_CONFIG")
    if explicit:
        file = Path(explicit)
        if not file.is_absolute():
            file = cwd / file
        if not file.is_file():
            raise ConfigError(f"{explicit}: config file not found")
        return str(explicit), _read_toml(file, str(explicit))
    local = cwd / "qctl.toml"
    if local.is_file():
        return "qctl.toml", _read_toml(local, "qctl.toml")
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        tool = _read_toml(pyproject, "pyproject.toml").get("tool", {})
        if isinstance(tool, dict) and isinstance(tool.get("qctl"), dict):
            return "pyproject.toml [tool.qctl]", tool["qctl"]
    return BUILT_IN, {}


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
    "block_for": ((int, float), "a number of seconds (0 = forever)"),
    "prefix": (str, "a string"),
    "max_stalls": (int, "a whole number"),
    "busy_poll_us": (int, "a whole number of microseconds (0 = off)"),
}
_STORE_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "driver": (str, "a driver name"),
    "url": (str, "a URL string"),
    "table": (str, "a table name"),
}
_TOP_KEYS = ("default", "app", "key", "connections", "failed", "batching", "cache", "caches", "models")


def parse(raw: Mapping[str, Any], source: str = BUILT_IN) -> Config:
    """Validate a parsed TOML mapping; every error names `source`, the key and the expectation."""
    _reject_unknown(raw, _TOP_KEYS, source, "")
    default = _typed(raw, "default", str, "a connection name", source, "") or "database"
    app = _parse_app(raw.get("app", []), source)
    key = parse_key(raw["key"], source, "key") if raw.get("key") else None
    connections = built_in_connections()
    user_connections = raw.get("connections", {})
    if not isinstance(user_connections, dict):
        raise ConfigError(f"{source}: connections: expected a table of connections")
    for name, section in user_connections.items():
        connections[name] = _parse_connection(name, section, source)
    store_url = _default_store_url(connections, default)
    models = raw.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"{source}: models: expected a table")
    session = _typed(models, "session", str, "an import path like 'myapp.db:Session'", source, "models.")
    config = Config(
        source=source,
        default=default,
        app=app,
        key=key,
        connections=connections,
        failed=_parse_store(raw, "failed", FAILED_DRIVERS, store_url, "failed_jobs", source),
        batching=_parse_store(raw, "batching", BATCHING_DRIVERS, store_url, "job_batches", source),
        cache=_parse_store(raw, "cache", CACHE_DRIVERS, store_url, "cache", source),
        caches=_parse_caches(raw.get("caches", {}), store_url, source),
        models_session=session,
        declared=tuple(user_connections),
    )
    config.connection(default)  # the default must name a real connection
    return config


def _parse_app(value: Any, source: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{source}: app: expected a list of module names, got {value!r}")
    return tuple(value)


def _parse_connection(name: str, section: Any, source: str) -> ConnectionConfig:
    where = f"connections.{name}."
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: connections.{name}: expected a table")
    _reject_unknown(section, tuple(_CONNECTION_KEYS), source, where)
    values = {k: _typed(section, k, t, e, source, where) for k, (t, e) in _CONNECTION_KEYS.items()}
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
    _check_positive(values, "retry_after", source, where)
    _check_positive(values, "max_stalls", source, where)
    if values["block_for"] is not None and values["block_for"] < 0:
        raise ConfigError(f"{source}: {where}block_for: expected 0 or more seconds")
    if values["busy_poll_us"] is not None and not 0 <= values["busy_poll_us"] <= MAX_BUSY_POLL_US:
        raise ConfigError(
            f"{source}: {where}busy_poll_us: expected 0 to {MAX_BUSY_POLL_US} microseconds, got {values['busy_poll_us']!r}"
        )
    kwargs = {k: v for k, v in values.items() if v is not None}
    return ConnectionConfig(name=name, **kwargs)


def _parse_store(
    raw: Mapping[str, Any], section_name: str, drivers: tuple[str, ...], url: str, table: str, source: str
) -> StoreConfig:
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
    if store_url is None:
        store_url = DEFAULT_REDIS_URL if driver == "redis" else url
    store_table = _typed(section, "table", str, "a table name", source, where) or table
    return StoreConfig(driver, store_url, store_table)


def _parse_caches(sections: Any, url: str, source: str) -> dict[str, StoreConfig]:
    if not isinstance(sections, dict):
        raise ConfigError(f"{source}: caches: expected a table of named cache stores ([caches.NAME])")
    return {name: _parse_store(sections, name, CACHE_DRIVERS, url, "cache", f"{source}: caches") for name in sections}


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


def _check_positive(values: dict[str, Any], key: str, source: str, where: str) -> None:
    if values[key] is not None and values[key] <= 0:
        raise ConfigError(f"{source}: {where}{key}: expected a positive number, got {values[key]!r}")


def _reject_unknown(section: Mapping[str, Any], known: tuple[str, ...], source: str, where: str) -> None:
    for key in section:
        if key not in known:
            raise ConfigError(
                f"{source}: {where}{key}: unknown key; expected one of " + ", ".join(known)
            )


def parse_key(value: Any, source: str, where: str) -> bytes:
    """An app key is `base64:` followed by at least 16 random bytes, as `qctl key:generate` prints."""
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
        config = replace(config, failed=replace(config.failed, driver=driver))
    if env.get("QCTL_KEY"):
        config = replace(config, key=parse_key(env["QCTL_KEY"], "QCTL_KEY", "value"))
    return config
