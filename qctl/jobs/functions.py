"""Queued module-level functions: qctl's analogue of Laravel's queued closures.

Only functions marked `@qctl.queueable` can be queued, so a worker never calls a
function a payload merely names. Lambdas, nested functions and bound methods are
refused at dispatch: a worker could not import them back.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Self, TypeVar

from qctl.errors import SerializationError
from qctl.jobs.job import Job

F = TypeVar("F", bound=Callable[..., Any])
MARK = "__qctl_queueable__"


def queueable(fn: F) -> F:
    """Mark a module-level function as safe for workers to run from a payload."""
    setattr(fn, MARK, True)
    return fn


def is_queueable(fn: Any) -> bool:
    return callable(fn) and getattr(fn, MARK, False) is True


def check_queueable_function(fn: Any) -> None:
    """Refuse, at dispatch, anything a worker could not import back and run."""
    name = getattr(fn, "__qualname__", repr(fn))
    if inspect.ismethod(fn):
        raise SerializationError(f"{name}: bound methods cannot be queued; queue a module-level function")
    if not inspect.isfunction(fn):
        raise SerializationError(f"{name!s}: only module-level functions can be queued, got {type(fn).__name__}")
    if fn.__name__ == "<lambda>" or "<locals>" in fn.__qualname__:
        raise SerializationError(f"{name}: lambdas and nested functions cannot be queued; define it at module level")
    if not is_queueable(fn):
        raise SerializationError(
            f"{fn.__module__}.{name}: mark it with @qctl.queueable so workers are allowed to run it"
        )


class QueuedFunction(Job):
    """A call of a queueable function with its arguments, dispatched like any job."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        check_queueable_function(fn)
        self._qctl_fn = fn
        self._qctl_args = args
        self._qctl_kwargs = kwargs
        self._qctl_catch: list[Callable[..., Any]] = []

    def catch(self, callback: Callable[[BaseException], Any]) -> Self:
        """Run `callback(exc)` when the call fails for good (a module-level function)."""
        if not inspect.isfunction(callback) or "<locals>" in callback.__qualname__ or callback.__name__ == "<lambda>":
            raise SerializationError(f"{getattr(callback, '__qualname__', callback)!s}: catch callbacks must be module-level functions")
        self._qctl_catch.append(callback)
        return self

    @property
    def function(self) -> Callable[..., Any]:
        return self._qctl_fn

    @property
    def arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return self._qctl_args, self._qctl_kwargs

    @property
    def catch_callbacks(self) -> list[Callable[..., Any]]:
        return list(self._qctl_catch)

    def display_name(self) -> str:
        return f"{self._qctl_fn.__module__}.{self._qctl_fn.__qualname__}"

    def handle(self) -> Any:
        return self._qctl_fn(*self._qctl_args, **self._qctl_kwargs)

    def failed(self, exc: BaseException) -> None:
        for callback in self._qctl_catch:
            callback(exc)


def queued(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> QueuedFunction:
    """`qctl.queued(fn, *args).catch(cb).on_queue("q").dispatch()`."""
    return QueuedFunction(fn, *args, **kwargs)
