"""The Redis driver's Lua scripts: read once from `lua/*.lua`, called by SHA, reloaded after NOSCRIPT."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Script:
    name: str
    source: bytes
    sha: str


@cache
def script(name: str) -> Script:
    """`name` is a file under qctl/drivers/lua without its `.lua` suffix."""
    source = resources.files("qctl.drivers").joinpath("lua", f"{name}.lua").read_bytes()
    return Script(name, source, hashlib.sha1(source).hexdigest())


class RegisteredScripts:
    """A store's scripts under `<package>/lua/`, each read and registered on its redis-py client once
    (redis-py's Script reloads itself after NOSCRIPT). Call it with a script's name."""

    def __init__(self, package: str, client: Callable[[], Any]) -> None:
        self._package = package
        self._client = client
        self._registered: dict[str, Any] = {}

    def __call__(self, name: str) -> Any:
        found = self._registered.get(name)
        if found is None:
            text = resources.files(self._package).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
            found = self._registered[name] = self._client().register_script(text)
        return found


SCRIPT_NAMES = ("push", "later", "bulk", "reserve", "delete", "delete_push", "release", "renew", "size", "clear", "clear_returning", "queue_sizes")
