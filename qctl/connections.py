"""Connection name → driver, created on first use and cached for the process."""

from __future__ import annotations

import threading

from qctl.config import Config
from qctl.drivers import Driver, SyncRunner, connect


class ConnectionManager:
    def __init__(self, config: Config, sync_runner: SyncRunner) -> None:
        self.config = config
        self._sync_runner = sync_runner
        self._drivers: dict[str, Driver] = {}
        self._lock = threading.Lock()

    def get(self, name: str | None = None) -> Driver:
        connection = self.config.connection(name)
        with self._lock:
            driver = self._drivers.get(connection.name)
            if driver is None:
                driver = self._drivers[connection.name] = connect(connection, self._sync_runner)
            return driver

    def close(self) -> None:
        with self._lock:
            for driver in self._drivers.values():
                driver.close()
            self._drivers.clear()
