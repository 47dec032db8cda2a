"""What every command gets: the loaded config and, on demand, the runtime built from it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from qctl import config as config_module
from qctl.config import Config

if TYPE_CHECKING:
    import typer

    from qctl.runtime import Runtime


@dataclass
class CliContext:
    config_path: str | None = None
    extra_app: tuple[str, ...] = field(default_factory=tuple)

    @cached_property
    def config(self) -> Config:
        loaded = config_module.load(self.config_path).with_app(*self.extra_app)
        if loaded.directory is not None and str(loaded.directory) not in sys.path:
            sys.path.insert(1, str(loaded.directory))  # `app` beside a qctl.toml found in a parent directory
        return loaded

    @cached_property
    def runtime(self) -> Runtime:
        from qctl import runtime

        built = runtime.Runtime(self.config)
        runtime.set_current(built)
        return built


def put_cwd_on_path(cwd: Path | None = None) -> None:
    """Every qctl command imports `app` modules that live beside qctl.toml without extra setup."""
    path = str(cwd or Path.cwd())
    if path not in sys.path[:1]:
        sys.path.insert(0, path)


def get(ctx: typer.Context) -> CliContext:
    found = ctx.find_object(CliContext)
    if found is None:  # a command invoked without the root callback (tests)
        found = CliContext()
        ctx.obj = found
    return found


def note_if_unconfigured(ctx: typer.Context) -> None:
    """A listing run where no config file is found says so (its empty answer may be the wrong place)."""
    found = get(ctx).config
    if found.source == config_module.BUILT_IN:
        from qctl.cli import output

        output.notice(f"note: no qctl.toml or [tool.qctl] found in {Path.cwd()} or above; built-in defaults "
                      "(./qctl.sqlite) were read")


def cwd() -> Path:
    return Path.cwd()
