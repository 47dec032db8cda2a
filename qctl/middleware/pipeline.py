"""The only place that nests middleware calls around a job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qctl.middleware.base import MiddlewareError, Next


def compose(middlewares: Sequence[Any], final: Next) -> Next:
    """`final` wrapped by each middleware, the first one outermost."""
    if not isinstance(middlewares, list | tuple):
        raise MiddlewareError(f"middleware() must return a list, not {type(middlewares).__qualname__}")
    call = final
    for middleware in reversed(middlewares):
        if not callable(getattr(middleware, "handle", None)):
            raise MiddlewareError(f"{middleware!r} is not a middleware: it has no handle(job, next) method")
        call = _wrap(middleware, call)
    return call


def _wrap(middleware: Any, next_call: Next) -> Next:
    def step(job: Any) -> Any:
        return middleware.handle(job, next_call)

    return step
