"""Import paths from payloads back to job classes and functions, within the `app` packages only.

A payload is data from a store, so nothing it names is imported unless the
module sits in (or below) a package listed in `app`. That check happens before
any import: `os:system` or a module whose import has side effects never loads.
What the path leads to must itself be *defined* in an `app` package: `jobs:os`
or `jobs:Job` (names an app module merely imported) are refused, and the walk
from the module to the name reads attributes statically, so a module-level
`__getattr__` (a lazy import) never runs on a payload's say-so.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from qctl.errors import JobNotAllowedError, UnknownJobError
from qctl.jobs.functions import QueuedFunction, is_queueable
from qctl.jobs.job import Job


def split_path(path: str) -> tuple[str, list[str]]:
    module, sep, qualname = path.partition(":")
    parts = qualname.split(".") if sep else []
    if not module or not parts or not all(p.isidentifier() and not p.startswith("_") for p in parts):
        raise UnknownJobError(f"unknown job class {path!r}: expected 'package.module:ClassName'")
    return module, parts


def module_is_within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


class Resolver:
    """Turns `module:QualName` strings into classes and functions a worker may run.

    `trusted` is for payloads that never left this process (the sync driver,
    dispatch_sync): they were built from live objects, so any importable name is fine.
    """

    def __init__(self, app: tuple[str, ...], trusted: bool = False) -> None:
        self.app = app
        self.trusted = trusted
        self._cache: dict[str, Any] = {}
        self._approved: set[tuple[str, str]] = set()

    def job_class(self, path: str) -> type[Job]:
        found = self._lookup(path, "job class")
        if not (isinstance(found, type) and issubclass(found, Job)) or issubclass(found, QueuedFunction):
            raise UnknownJobError(f"unknown job class {path!r}: it is not a qctl.Job subclass")
        self._check_defined_in_app(found, path, "job class")
        return found

    def function(self, path: str) -> Callable[..., Any]:
        found = self._lookup(path, "function")
        if not is_queueable(found):
            raise JobNotAllowedError(
                f"function {path!r} is not marked @qctl.queueable; mark it to let workers run it"
            )
        self._check_defined_in_app(found, path, "function")
        return found  # type: ignore[no-any-return]

    def callback(self, path: str) -> Callable[..., Any]:
        """A chain, batch or queued-function callback: a function or class defined in `app`."""
        found = self._lookup(path, "callback")
        if not (inspect.isfunction(found) or isinstance(found, type)):
            raise UnknownJobError(f"unknown callback {path!r}: not a function or class")
        self._check_defined_in_app(found, path, "callback")
        return found

    def value_class(self, path: str) -> type:
        """Classes of typed values (Enums, models): defined in the app packages, like job classes."""
        found = self._lookup(path, "class")
        if not isinstance(found, type):
            raise UnknownJobError(f"unknown class {path!r}: not a class")
        self._check_defined_in_app(found, path, "class")
        return found

    def _check_defined_in_app(self, found: Any, path: str, kind: str) -> None:
        """What a path reaches must be defined in `app`, not only imported there (`jobs:Job`, `jobs:os.system`)."""
        if self.trusted or (kind, path) in self._approved:
            return
        home = getattr(found, "__module__", None)
        if type(home) is str and module_is_within(home, self.app):
            self._approved.add((kind, path))
            return
        allowed = ", ".join(repr(p) for p in self.app) or "nothing"
        where = f"defined in {home!r}" if type(home) is str else "not defined in any module"
        raise JobNotAllowedError(
            f"{kind} {path!r} is {where}, outside the app packages (app = [{allowed}]); "
            "workers only run code defined there"
        )

    def _lookup(self, path: str, kind: str) -> Any:
        if path in self._cache:
            return self._cache[path]
        module_name, _ = split_path(path)
        if not self.trusted and not module_is_within(module_name, self.app):
            allowed = ", ".join(repr(p) for p in self.app) or "nothing"
            raise JobNotAllowedError(
                f"{kind} {path!r} is outside the app packages (app = [{allowed}]); "
                f"add {module_name.split('.')[0]!r} (or {module_name!r}) to `app` in qctl.toml to allow it"
            )
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # an app module that fails to import is reported, not raised
            raise UnknownJobError(f"unknown {kind} {path!r}: cannot import {module_name!r} ({exc})") from None
        found = self._walk(module, path, kind)
        self._cache[path] = found
        return found

    @staticmethod
    def _walk(module: Any, path: str, kind: str) -> Any:
        """Module → attribute by attribute, read statically: no `__getattr__`, property or descriptor runs."""
        _, parts = split_path(path)
        found = module
        for part in parts:
            found = inspect.getattr_static(found, part, None)
            if isinstance(found, staticmethod):  # a callback stored as `Class.function`
                found = found.__func__
            if found is None:
                raise UnknownJobError(f"unknown {kind} {path!r}: {module.__name__} has no {part!r}")
        return found
