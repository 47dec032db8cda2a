"""The Redis driver's Lua scripts: read once from `lua/*.lua`, called by SHA, reloaded after NOSCRIPT."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources


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


SCRIPT_NAMES = ("push", "later", "reserve", "delete", "delete_push", "release", "renew", "size", "clear", "clear_returning")
