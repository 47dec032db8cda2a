"""SQLAlchemy model instances as job attributes: only the mapped class and the primary key travel.

At dispatch a persistent instance becomes `{"cls": "module:Class", "key": [...]}` (composite keys
included); an unsaved one is refused. When the job runs, the worker fetches the row again through
`[models] session` (see `qctl.worker.models`): no relation, no stale column value, goes along.

Nothing here imports SQLAlchemy: an object can only be a mapped instance if SQLAlchemy's ORM is
already loaded.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qctl.errors import PayloadError, SerializationError


@dataclass(frozen=True)
class ModelRef:
    """A decoded model attribute waiting to be fetched: `cls` with primary key `key`."""

    cls: type
    key: tuple[Any, ...]
    where: str

    @property
    def name(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"


class _Seen(threading.local):
    def __init__(self) -> None:
        self.classes: list[type] = []
        self.refs = 0


_seen = _Seen()


def take_encoded_classes() -> list[type]:
    """The model classes encoded in this thread since the last call (the dispatcher checks them)."""
    classes = _seen.classes
    if classes:
        _seen.classes = []
    return classes


def decoded_refs() -> int:
    """How many model references this thread has decoded so far (a worker compares before and after)."""
    return _seen.refs


def instance_state(value: Any) -> Any | None:
    """SQLAlchemy's state of a mapped instance, or None for anything else."""
    if "sqlalchemy.orm" not in sys.modules:
        return None
    from sqlalchemy import inspect
    from sqlalchemy.orm import InstanceState

    state = inspect(value, raiseerr=False)
    return state if isinstance(state, InstanceState) else None


def encode_model(
    value: Any, where: str, allow_main: bool, class_path: Callable[..., str], encode: Callable[..., Any]
) -> dict[str, Any] | None:
    """The model's class and key as JSON-ready data, or None when `value` is not a mapped instance."""
    state = instance_state(value)
    if state is None:
        return None
    cls = state.class_
    if state.key is None:
        raise SerializationError(
            f"{where}: this {cls.__qualname__} is not saved yet (transient or pending); flush or commit it "
            "before dispatching a job that holds it: only its primary key is queued"
        )
    identity = tuple(state.key[1])
    _seen.classes.append(cls)
    return {
        "cls": class_path(cls, where, allow_main),
        "key": [encode(part, f"{where}<key>", allow_main) for part in identity],
    }


def decode_model(data: Any, where: str, resolve: Callable[[str], type], decode: Callable[..., Any]) -> ModelRef:
    cls = resolve(data["cls"])
    key = data["key"]
    if not isinstance(key, list) or not key:
        raise PayloadError(f"{where}: a model's key must be a non-empty list")
    _seen.refs += 1
    return ModelRef(cls, tuple(decode(part, f"{where}<key>", resolve) for part in key), where)


def replace_refs(value: Any, fetch: Callable[[ModelRef], Any]) -> Any:
    """`value` with every ModelRef in it (inside lists, tuples, sets and dicts too) fetched."""
    if isinstance(value, ModelRef):
        return fetch(value)
    kind = type(value)
    if kind in (list, tuple, set, frozenset):
        return kind(replace_refs(item, fetch) for item in value)
    if kind is dict:
        return {replace_refs(k, fetch): replace_refs(v, fetch) for k, v in value.items()}
    return value
