"""The only place that nests middleware calls around a job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Next = Callable[[Any], Any]


def compose(middlewares: Sequence[Any], final: Next) -> Next:
    """`final` wrapped by each middleware, the first one outermost."""
    call = final
    for middleware in reversed(middlewares):
        call = _wrap(middleware, call)
    return call


def _wrap(middleware: Any, next_call: Next) -> Next:
    def step(job: Any) -> Any:
        return middleware.handle(job, next_call)

    return step
