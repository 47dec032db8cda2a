"""What every command gets: the loaded config and, on demand, the runtime built from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from qctl import config as config_module
from qctl.config import Config

if TYPE_CHECKING:
    from qctl.runtime import Runtime


@dataclass
class CliContext:
    config_path: str | None = None
    extra_app: tuple[str, ...] = field(default_factory=tuple)

    @cached_property
    def config(self) -> Config:
        return config_module.load(self.config_path).with_app(*self.extra_app)

    @cached_property
    def runtime(self) -> Runtime:
        from qctl import runtime

        built = runtime.Runtime(self.config)
        runtime.set_current(built)
        return built


def get(ctx: typer.Context) -> CliContext:
    found = ctx.find_object(CliContext)
    if found is None:  # a command invoked without the root callback (tests)
        found = CliContext()
        ctx.obj = found
    return found


def cwd() -> Path:
    return Path.cwd()
