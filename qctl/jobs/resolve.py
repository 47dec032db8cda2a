"""Import paths from payloads back to job classes and functions, within the `app` packages only.

A payload is data from a store, so nothing it names is imported unless the
module sits in (or below) a package listed in `app`. That check happens before
any import: `os:system` or a module whose import has side effects never loads.
"""

from __future__ import annotations

import importlib
import sys
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

    def job_class(self, path: str) -> type[Job]:
        found = self._lookup(path, "job class")
        if not (isinstance(found, type) and issubclass(found, Job)) or issubclass(found, QueuedFunction):
            raise UnknownJobError(f"unknown job class {path!r}: it is not a qctl.Job subclass")
        return found

    def function(self, path: str) -> Callable[..., Any]:
        found = self._lookup(path, "function")
        if not is_queueable(found):
            raise JobNotAllowedError(
                f"function {path!r} is not marked @qctl.queueable; mark it to let workers run it"
            )
        return found  # type: ignore[no-any-return]

    def callback(self, path: str) -> Callable[..., Any]:
        found = self._lookup(path, "callback")
        if not callable(found):
            raise UnknownJobError(f"unknown callback {path!r}: not callable")
        return found  # type: ignore[no-any-return]

    def value_class(self, path: str) -> type:
        """Classes of typed values (Enums): app packages, or modules this process already loaded."""
        module, _ = split_path(path)
        if module in sys.modules:
            found = self._walk(sys.modules[module], path)
        else:
            found = self._lookup(path, "class")
        if not isinstance(found, type):
            raise UnknownJobError(f"unknown class {path!r}")
        return found

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
        found = self._walk(module, path)
        self._cache[path] = found
        return found

    @staticmethod
    def _walk(module: Any, path: str) -> Any:
        _, parts = split_path(path)
        found = module
        for part in parts:
            found = getattr(found, part, None)
            if found is None:
                raise UnknownJobError(f"unknown job class {path!r}: {module.__name__} has no {part!r}")
        return found
