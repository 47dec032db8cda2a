"""Callbacks that outlive the process that registered them: chain `catch`, batch `then`/`catch`/….

They are stored by import path (`package.module:function`), so only module-level
functions defined inside the `app` packages qualify; a lambda, a nested function or a
bound method is refused when it is registered, not when a worker finds it. A worker
resolves them through the same allow-list as job classes, and a callback that raises
is logged (as Laravel reports it) and never fails the job that triggered it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from qctl.errors import QctlError, SerializationError
from qctl.jobs.resolve import Resolver, module_is_within

log = logging.getLogger("qctl.bus")


def callback_path(fn: Any, what: str) -> str:
    """`module:qualname` of a module-level function, or SerializationError saying why it cannot be stored."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    if inspect.ismethod(fn):
        raise SerializationError(f"{what} {name}: bound methods cannot be stored; use a module-level function")
    if not inspect.isfunction(fn):
        raise SerializationError(f"{what} {name!s}: expected a module-level function, got {type(fn).__name__}")
    if fn.__name__ == "<lambda>" or "<locals>" in fn.__qualname__:
        raise SerializationError(f"{what} {name}: lambdas and nested functions cannot be stored; define it at module level")
    return f"{fn.__module__}:{fn.__qualname__}"


def check_within_app(path: str, app: tuple[str, ...], source: str, what: str) -> None:
    """Refuse at dispatch a callback no worker would be allowed to run."""
    module = path.partition(":")[0]
    if module_is_within(module, app):
        return
    allowed = ", ".join(repr(p) for p in app) or "nothing"
    raise SerializationError(
        f"{what} {path}: workers only run code from the app packages (app = [{allowed}] in {source}); "
        f"add {module.split('.')[0]!r} to `app` to allow it"
    )


def paths_of(fns: Sequence[Any], what: str, app: tuple[str, ...], source: str) -> list[str]:
    paths = [callback_path(fn, what) for fn in fns]
    for path in paths:
        check_within_app(path, app, source, what)
    return paths


def invoke_all(resolver: Resolver, paths: Sequence[str], what: str, *args: Any) -> int:
    """Call each stored callback; one that cannot be resolved or raises is logged. Returns how many ran."""
    ran = 0
    for path in paths:
        try:
            fn: Callable[..., Any] = resolver.callback(str(path))
        except QctlError as exc:
            log.error("%s %s cannot run: %s", what, path, exc)
            continue
        try:
            fn(*args)
            ran += 1
        except Exception:
            log.exception("%s %s raised", what, path)
    return ran
