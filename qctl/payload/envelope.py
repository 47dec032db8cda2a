"""The payload envelope: Laravel's field names, built once at dispatch and never re-encoded.

Stored payloads move between stores as the exact bytes made here; a worker parses
them into an `Envelope` (raising PayloadError with a one-line reason when they
are not a qctl payload) and only ever writes those same bytes back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid as uuid_module
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from qctl.errors import PayloadError
from qctl.limits import MAX_COUNT, MAX_SECONDS
from qctl.payload.signing import Signer
from qctl.payload.writing import Layout, encoded_values, layout_for, write

HANDLER_JOB = "qctl.CallQueuedHandler@call"
HANDLER_FUNCTION = "qctl.CallQueuedFunction@call"

MAX_NAME = 1000
_OPTIONAL_INT = {"maxTries": MAX_COUNT, "maxExceptions": MAX_COUNT, "retryUntil": 2**40}
_UUID = re.compile(r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_COMMAND_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_COMMAND_KEYS = ("commandName", "command")
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode  # json.dumps builds one per call


@dataclass(slots=True)
class Envelope:
    uuid: str
    display_name: str
    job: str
    command_name: str
    command: Any
    max_tries: int | None = None
    max_exceptions: int | None = None
    fail_on_timeout: bool = False
    backoff: str | None = None
    timeout: float | None = None
    retry_until: int | None = None
    pushed_at: str = ""
    extra_data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_function(self) -> bool:
        return self.job == HANDLER_FUNCTION

    @property
    def is_encrypted(self) -> bool:
        return isinstance(self.command, str)

    def backoff_seconds(self) -> list[int] | None:
        return parse_backoff(self.backoff)

    def to_dict(self) -> dict[str, Any]:
        data = {"commandName": self.command_name, "command": self.command, **self.extra_data}
        return {
            "uuid": self.uuid,
            "displayName": self.display_name,
            "job": self.job,
            "maxTries": self.max_tries,
            "maxExceptions": self.max_exceptions,
            "failOnTimeout": self.fail_on_timeout,
            "backoff": self.backoff,
            "timeout": self.timeout,
            "retryUntil": self.retry_until,
            "data": data,
            "attempts": 0,
            "pushedAt": self.pushed_at,
        }

    def to_json(self, signer: Signer | None) -> str:
        """`to_dict()` as compact ASCII JSON, with its signature last when there is a signer."""
        extra = self.extra_data
        values = encoded_values(self.uuid, self.pushed_at, self.command, extra, signer is not None)
        return write(self.layout(tuple(extra)), values, signer)

    def layout(self, extra_keys: tuple[str, ...]) -> Layout:
        """The layout of every envelope with this one's fixed fields and extra data keys."""
        return layout_for(self.fixed_fields(extra_keys), self.to_dict, extra_keys)

    def fixed_fields(self, extra_keys: tuple[str, ...]) -> tuple[Any, ...]:
        """What tells this envelope's layout apart (numbers with their types: 30 and 30.0 are written apart)."""
        return (_exact(self.display_name), self.job, self.command_name, _exact(self.max_tries),
                _exact(self.max_exceptions), _exact(self.fail_on_timeout), self.backoff, _exact(self.timeout),
                _exact(self.retry_until), extra_keys)


def _exact(value: Any) -> Any:
    """`value` as a key that equal numbers of other types (1, 1.0, True; 0.0 and -0.0) do not share."""
    kind = type(value)
    return value if kind is int or kind is str or value is None else (kind, repr(value))


def new_uuid() -> str:
    """A random (version 4) UUID as text: what `str(uuid.uuid4())` gives, without building a UUID object."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_uuids() -> Iterator[str]:
    """Random (version 4) UUIDs as `new_uuid` writes them, endlessly, reading the random source once per 256."""
    while True:
        pool = os.urandom(4096).hex()
        yield from [
            f"{pool[i:i + 8]}-{pool[i + 8:i + 12]}-4{pool[i + 13:i + 16]}-{_VARIANT[pool[i + 16]]}{pool[i + 17:i + 20]}-{pool[i + 20:i + 32]}"
            for i in range(0, 8192, 32)
        ]


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""The hex digit holding the RFC 4122 variant bits (10xx), from a random one."""


def derived_uuid(base: str, label: str) -> str:
    """A uuid that is the same every time for the same (base, label): chain links and batch members made
    by a job that runs again get the ids they got the first time, so they are recognised, not doubled."""
    return str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, f"qctl:{base}:{label}"))


def pushed_at_now() -> str:
    return f"{time.time():.4f}"


def parse_backoff(text: str | None) -> list[int] | None:
    """Laravel stores a backoff list as a comma string ("1,5,10"); None means "use the worker's"."""
    if text is None or text == "":
        return None
    try:
        parts = [float(part) for part in str(text).split(",")]
    except ValueError:
        raise PayloadError(f"payload field 'backoff' must be seconds like '1,5,10', got {str(text)[:40]!r}") from None
    if len(parts) > 1000 or not all(-MAX_SECONDS <= part <= MAX_SECONDS for part in parts):  # NaN, inf fail
        raise PayloadError(f"payload field 'backoff' must be up to {MAX_SECONDS} seconds each (at most 1000 of them)")
    return [max(0, int(part)) for part in parts]


def format_backoff(value: int | float | list[int] | tuple[int, ...] | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return ",".join(str(int(v)) for v in value)
    return str(int(value))


def parse(raw: bytes, signer: Signer | None) -> Envelope:
    """Bytes from a store → Envelope, or PayloadError saying in one line why not. Total: whatever the
    bytes hold, nothing else is raised (a payload that crashed the reader would crash every worker)."""
    try:
        body = load_json_object(raw)
        if signer is not None:
            signer.verify(body)
        if not _well_formed(body):
            _explain(body)
        data = body["data"]
        backoff = body.get("backoff")
        display = body.get("displayName")
        return Envelope(
            uuid=body["uuid"],
            display_name=display if type(display) is str and 0 < len(display) <= MAX_NAME else data["commandName"],
            job=body["job"],
            command_name=data["commandName"],
            command=data["command"],
            max_tries=body.get("maxTries"),
            max_exceptions=body.get("maxExceptions"),
            fail_on_timeout=body.get("failOnTimeout") is True,
            backoff=None if backoff is None else str(backoff),
            timeout=body.get("timeout"),
            retry_until=body.get("retryUntil"),
            pushed_at=str(body.get("pushedAt", ""))[:64],
            extra_data={k: v for k, v in data.items() if k not in _COMMAND_KEYS} if len(data) > 2 else {},
        )
    except PayloadError:
        raise
    except Exception as exc:  # RecursionError, OverflowError, MemoryError's cousins: refuse, never crash
        raise PayloadError(f"payload cannot be read ({type(exc).__name__})") from None


_GOOD_NAMES: set[str] = set()
"""commandName values already seen to be `module:Name` paths (the check is a regex)."""


def _well_formed(body: dict[str, Any]) -> bool:
    """The common case in one pass; anything it does not accept goes to `_explain` for the reason."""
    data = body.get("data")
    if type(data) is not dict or type(data.get("commandName")) is not str or "command" not in data:
        return False
    uuid = body.get("uuid")
    if type(uuid) is not str or not _UUID.match(uuid) or type(body.get("job")) is not str:
        return False
    name = data["commandName"]
    if name not in _GOOD_NAMES:
        if not _COMMAND_NAME.match(name):
            return False
        if len(_GOOD_NAMES) < 10_000:  # a worker sees a few classes; a flood of forged names is not kept
            _GOOD_NAMES.add(name)
    for name, high in _OPTIONAL_INT.items():
        value = body.get(name)
        if value is not None and (type(value) is not int or not 0 <= value <= high):
            return False
    value = body.get("timeout")
    if value is not None and not (type(value) in (int, float) and 0 <= value <= MAX_SECONDS):
        return False
    if len(data) > 2 and "batchId" in data and not _is_uuid(data["batchId"]):
        return False
    return body.get("backoff") is None


def _is_uuid(value: Any) -> bool:
    return type(value) is str and _UUID.match(value) is not None


def _explain(body: dict[str, Any]) -> None:
    """Raise PayloadError naming what is wrong; returns when the body is a valid payload after all."""
    data = _field(body, "data", dict, "an object")
    name = _field(data, "commandName", str, "a string")
    if not _COMMAND_NAME.match(name):
        raise PayloadError("payload field 'data.commandName' must be a 'module:Name' path")
    if "command" not in data:
        raise PayloadError("payload is missing field 'data.command'")
    for field_name, high in _OPTIONAL_INT.items():
        _optional(body, field_name, int, "an integer or null")
        value = body.get(field_name)
        if value is not None and not 0 <= value <= high:
            raise PayloadError(f"payload field {field_name!r} must be between 0 and {high}")
    _optional(body, "timeout", int | float, "a number or null")
    timeout = body.get("timeout")
    if timeout is not None and not 0 <= timeout <= MAX_SECONDS:  # NaN fails both comparisons
        raise PayloadError(f"payload field 'timeout' must be between 0 and {MAX_SECONDS} seconds")
    backoff = body.get("backoff")
    if backoff is not None and type(backoff) not in (str, int, float):
        raise PayloadError("payload field 'backoff' must be seconds like '1,5,10'")
    parse_backoff(None if backoff is None else str(backoff))
    uuid = _field(body, "uuid", str, "a string")
    if not _UUID.match(uuid):
        raise PayloadError("payload field 'uuid' must be a uuid (36 characters, hex and dashes)")
    _field(body, "job", str, "a string")
    if "batchId" in data and not _is_uuid(data["batchId"]):  # settling would write to a forged batch
        raise PayloadError("payload field 'data.batchId' must be a uuid")


def load_json_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("payload is not valid UTF-8") from None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise PayloadError("payload is not valid JSON") from None
    if not isinstance(body, dict):
        raise PayloadError(f"payload is not a JSON object (got {type(body).__name__})")
    return body


def uuid_of(raw: bytes, fallback_key: str = "") -> str:
    """A stable uuid for a payload that could not be read or verified, derived from its bytes.

    Such a payload's own claim to a uuid is not trusted (a forged payload could
    name a real job's uuid). The failed store is idempotent on uuid, so recording
    the same stored entry twice (a crash between the insert and the delete)
    still gives one row; `fallback_key` names the entry (connection, queue, id).
    """
    digest = hashlib.sha256(fallback_key.encode() + b"\0" + raw).hexdigest()
    return str(uuid_module.uuid5(uuid_module.NAMESPACE_OID, digest))


def _field(body: Mapping[str, Any], name: str, kind: type, expected: str) -> Any:
    if name not in body:
        raise PayloadError(f"payload is missing field {name!r}")
    if not isinstance(body[name], kind):
        raise PayloadError(f"payload field {name!r} must be {expected}")
    return body[name]


def _optional(body: Mapping[str, Any], name: str, kind: Any, expected: str) -> None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
        raise PayloadError(f"payload field {name!r} must be {expected}")
