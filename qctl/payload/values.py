"""Job attribute values to JSON and back, exactly, types included.

JSON types pass through as they are. Every other allowed type becomes a tagged
object `{"__qctl__": tag, "v": …}`; anything not allowed is refused when the
job is dispatched, naming the attribute, so a bad value never reaches a worker.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import math
import threading
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from qctl.errors import PayloadError, SerializationError
from qctl.payload.models import decode_model, encode_model

TAG = "__qctl__"
ALLOWED = (
    "None, bool, int, float, str, list, dict, tuple, set, frozenset, bytes, datetime, date, "
    "time, timedelta, Decimal, UUID, Enum, saved SQLAlchemy model instances"
)

ClassResolver = Callable[[str], type]


class _Encoded(threading.local):
    def __init__(self) -> None:
        self.enums: set[type] = set()


_encoded = _Encoded()


def take_encoded_enums() -> set[type]:
    """The Enum classes encoded in this thread since the last call (the dispatcher checks where they live)."""
    enums = _encoded.enums
    if enums:
        _encoded.enums = set()
    return enums


def encode(value: Any, where: str, allow_main: bool = False) -> Any:
    """`value` as JSON-ready data; `where` names the attribute in error messages."""
    kind = type(value)
    if value is None or kind in (bool, str, int):
        return value
    if isinstance(value, enum.Enum):
        _encoded.enums.add(kind)
        return _tagged("enum", {"cls": class_path(kind, where, allow_main), "v": encode(value.value, where)})
    if kind is float:
        return value if math.isfinite(value) else _tagged("float", repr(value))
    if kind is list:
        return [encode(item, f"{where}[{i}]", allow_main) for i, item in enumerate(value)]
    if kind is dict:
        return _encode_dict(value, where, allow_main)
    encoder = _ENCODERS.get(kind)
    if encoder is not None:
        return _tagged(encoder[0], encoder[1](value, where, allow_main))
    model = encode_model(value, where, allow_main, class_path, encode)
    if model is not None:
        return _tagged("model", model)
    raise SerializationError(f"{where}: cannot queue a value of type {_describe(value)}; allowed: {ALLOWED}")


def decode(data: Any, where: str, resolve_class: ClassResolver) -> Any:
    """The inverse of `encode`; a bad tagged value raises PayloadError naming the attribute."""
    if isinstance(data, list):
        return [decode(item, f"{where}[{i}]", resolve_class) for i, item in enumerate(data)]
    if not isinstance(data, dict):
        return data
    if TAG not in data:
        return {k: decode(v, f"{where}.{k}", resolve_class) for k, v in data.items()}
    tag = data[TAG]
    decoder = _DECODERS.get(tag)
    if decoder is None or "v" not in data:
        raise PayloadError(f"{where}: unknown typed value {tag!r}")
    try:
        return decoder(data["v"], where, resolve_class)
    except PayloadError:
        raise
    except (ValueError, TypeError, KeyError, InvalidOperation, AttributeError) as exc:
        raise PayloadError(f"{where}: bad {tag} value {data['v']!r} ({exc})") from None


def class_path(cls: type | Callable[..., Any], where: str, allow_main: bool = False) -> str:
    """`module:QualName` for something a worker can import back; refuses what it cannot."""
    qualname = getattr(cls, "__qualname__", "")
    module = getattr(cls, "__module__", None)
    if not module or "<locals>" in qualname or "<lambda>" in qualname or not qualname:
        raise SerializationError(
            f"{where}: {qualname or cls!r} is defined inside a function or is a lambda; "
            "a worker can only import module-level classes and functions"
        )
    if module == "__main__" and not allow_main:
        raise SerializationError(
            f"{where}: {qualname} is defined in __main__; move it to a module a worker can import"
        )
    return f"{module}:{qualname}"


def _tagged(tag: str, value: Any) -> dict[str, Any]:
    return {TAG: tag, "v": value}


def _describe(value: Any) -> str:
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__qualname__
    if callable(value) and getattr(value, "__name__", "") == "<lambda>":
        return f"{name!r} (a lambda)"
    return repr(name)


def _encode_dict(value: dict[Any, Any], where: str, allow_main: bool) -> Any:
    if all(isinstance(k, str) for k in value) and TAG not in value:
        return {k: encode(v, f"{where}.{k}", allow_main) for k, v in value.items()}
    # Non-string keys (or a key that looks like our tag) keep their types as a list of pairs.
    pairs = [[encode(k, f"{where}<key>", allow_main), encode(v, f"{where}[{k!r}]", allow_main)] for k, v in value.items()]
    return _tagged("dict", pairs)


def _seq(value: Any, where: str, allow_main: bool) -> list[Any]:
    return [encode(item, f"{where}[{i}]", allow_main) for i, item in enumerate(value)]


def _b64(value: bytes | bytearray, where: str, allow_main: bool) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


def _iso(value: dt.date | dt.time, where: str, allow_main: bool) -> str:
    return value.isoformat()


_ENCODERS: dict[type, tuple[str, Callable[[Any, str, bool], Any]]] = {
    tuple: ("tuple", _seq),
    set: ("set", _seq),
    frozenset: ("frozenset", _seq),
    bytes: ("bytes", _b64),
    bytearray: ("bytearray", _b64),
    dt.datetime: ("datetime", _iso),
    dt.date: ("date", _iso),
    dt.time: ("time", _iso),
    dt.timedelta: ("timedelta", lambda v, w, m: [v.days, v.seconds, v.microseconds]),
    Decimal: ("decimal", lambda v, w, m: str(v)),
    uuid.UUID: ("uuid", lambda v, w, m: str(v)),
}


def _decode_seq(kind: Callable[[list[Any]], Any]) -> Callable[[Any, str, ClassResolver], Any]:
    def decoder(items: Any, where: str, resolve: ClassResolver) -> Any:
        if not isinstance(items, list):
            raise TypeError("expected a list")
        return kind([decode(item, f"{where}[{i}]", resolve) for i, item in enumerate(items)])

    return decoder


def _decode_dict(pairs: Any, where: str, resolve: ClassResolver) -> dict[Any, Any]:
    return {decode(k, f"{where}<key>", resolve): decode(v, f"{where}[{k!r}]", resolve) for k, v in pairs}


def _decode_enum(data: Any, where: str, resolve: ClassResolver) -> enum.Enum:
    cls = resolve(data["cls"])
    if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
        raise PayloadError(f"{where}: {data['cls']} is not an Enum")
    raw = decode(data["v"], where, resolve)
    try:
        return cls(raw)
    except ValueError:
        raise PayloadError(f"{where}: {data['cls']} has no member with value {raw!r}") from None


def _decode_float(text: Any, where: str, resolve: ClassResolver) -> float:
    if text not in ("nan", "inf", "-inf"):
        raise ValueError("expected nan, inf or -inf")
    return float(text)


def _decode_decimal(text: Any, where: str, resolve: ClassResolver) -> Decimal:
    if not isinstance(text, str):
        raise TypeError("expected a string")
    return Decimal(text)


def _decode_timedelta(parts: Any, where: str, resolve: ClassResolver) -> dt.timedelta:
    days, seconds, micros = parts
    return dt.timedelta(days=days, seconds=seconds, microseconds=micros)


_DECODERS: dict[str, Callable[[Any, str, ClassResolver], Any]] = {
    "tuple": _decode_seq(tuple),
    "set": _decode_seq(set),
    "frozenset": _decode_seq(frozenset),
    "dict": _decode_dict,
    "bytes": lambda v, w, r: base64.b64decode(v, validate=True),
    "bytearray": lambda v, w, r: bytearray(base64.b64decode(v, validate=True)),
    "datetime": lambda v, w, r: dt.datetime.fromisoformat(v),
    "date": lambda v, w, r: dt.date.fromisoformat(v),
    "time": lambda v, w, r: dt.time.fromisoformat(v),
    "timedelta": _decode_timedelta,
    "decimal": _decode_decimal,
    "uuid": lambda v, w, r: uuid.UUID(v),
    "enum": _decode_enum,
    "float": _decode_float,
    "model": lambda v, w, r: decode_model(v, w, r, decode),
}
