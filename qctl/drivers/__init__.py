"""Transport drivers: name → factory, imported lazily so the CLI stays light."""

from __future__ import annotations

from collections.abc import Callable

from qctl.config import ConnectionConfig
from qctl.drivers.base import Driver, ReservedJob

SyncRunner = Callable[[str, str, bytes], None]

__all__ = ["Driver", "ReservedJob", "SyncRunner", "connect"]


def connect(config: ConnectionConfig, sync_runner: SyncRunner | None = None) -> Driver:
    """A driver for one configured connection."""
    if config.driver == "database":
        from qctl.drivers.database import DatabaseDriver

        return DatabaseDriver(config)
    if config.driver == "redis":
        from qctl.drivers.redis import RedisDriver

        return RedisDriver(config)
    if config.driver == "sync":
        from qctl.drivers.sync import SyncDriver

        if sync_runner is None:
            raise ValueError("the sync driver needs a runner")
        return SyncDriver(config, sync_runner)
    if config.driver == "memory":
        from qctl.drivers.memory import MemoryDriver

        return MemoryDriver(config)
    from qctl.drivers.null import NullDriver

    return NullDriver(config)
