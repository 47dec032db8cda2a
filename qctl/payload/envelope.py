"""The payload envelope: Laravel's field names, built once at dispatch and never re-encoded.

Stored payloads move between stores as the exact bytes made here; a worker parses
them into an `Envelope` (raising PayloadError with a one-line reason when they
are not a qctl payload) and only ever writes those same bytes back.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid as uuid_module
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qctl.errors import PayloadError
from qctl.payload.signing import SIGNATURE_FIELD, Signer

HANDLER_JOB = "qctl.CallQueuedHandler@call"
HANDLER_FUNCTION = "qctl.CallQueuedFunction@call"

_OPTIONAL_INT = ("maxTries", "maxExceptions", "retryUntil")
_OPTIONAL_NUMBER = ("timeout",)
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
        body = self.to_dict()
        if signer is not None:
            body[SIGNATURE_FIELD] = signer.sign(body)
        return _ENCODE(body)


def new_uuid() -> str:
    """A random (version 4) UUID as text: what `str(uuid.uuid4())` gives, without building a UUID object."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
        return [max(0, int(float(part))) for part in str(text).split(",")]
    except ValueError:
        raise PayloadError(f"payload field 'backoff' must be seconds like '1,5,10', got {text!r}") from None


def format_backoff(value: int | float | list[int] | tuple[int, ...] | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return ",".join(str(int(v)) for v in value)
    return str(int(value))


def parse(raw: bytes, signer: Signer | None) -> Envelope:
    """Bytes from a store → Envelope, or PayloadError saying in one line why not."""
    body = load_json_object(raw)
    if signer is not None:
        signer.verify(body)
    if not _well_formed(body):
        _explain(body)
    data = body["data"]
    backoff = body.get("backoff")
    return Envelope(
        uuid=body["uuid"],
        display_name=str(body.get("displayName") or data["commandName"]),
        job=body["job"],
        command_name=data["commandName"],
        command=data["command"],
        max_tries=body.get("maxTries"),
        max_exceptions=body.get("maxExceptions"),
        fail_on_timeout=bool(body.get("failOnTimeout", False)),
        backoff=None if backoff is None else str(backoff),
        timeout=body.get("timeout"),
        retry_until=body.get("retryUntil"),
        pushed_at=str(body.get("pushedAt", "")),
        extra_data={k: v for k, v in data.items() if k not in _COMMAND_KEYS} if len(data) > 2 else {},
    )


def _well_formed(body: dict[str, Any]) -> bool:
    """The common case in one pass; anything it does not accept goes to `_explain` for the reason."""
    data = body.get("data")
    if type(data) is not dict or type(data.get("commandName")) is not str or "command" not in data:
        return False
    if type(body.get("uuid")) is not str or type(body.get("job")) is not str:
        return False
    for name in _OPTIONAL_INT:
        value = body.get(name)
        if value is not None and type(value) is not int:
            return False
    value = body.get("timeout")
    if value is not None and type(value) is not int and type(value) is not float:
        return False
    backoff = body.get("backoff")
    return backoff is None


def _explain(body: dict[str, Any]) -> None:
    """Raise PayloadError naming what is wrong; returns when the body is a valid payload after all."""
    data = _field(body, "data", dict, "an object")
    _field(data, "commandName", str, "a string")
    if "command" not in data:
        raise PayloadError("payload is missing field 'data.command'")
    for name in _OPTIONAL_INT:
        _optional(body, name, int, "an integer or null")
    for name in _OPTIONAL_NUMBER:
        _optional(body, name, int | float, "a number or null")
    backoff = body.get("backoff")
    parse_backoff(None if backoff is None else str(backoff))
    _field(body, "uuid", str, "a string")
    _field(body, "job", str, "a string")


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
