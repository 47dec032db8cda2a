"""Job instance → payload envelope: every value is checked here, at dispatch time."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from qctl.errors import SerializationError
from qctl.jobs.contracts import ShouldBeEncrypted
from qctl.jobs.functions import QueuedFunction
from qctl.jobs.job import Job
from qctl.limits import MAX_COUNT, MAX_SECONDS
from qctl.payload.envelope import (
    HANDLER_FUNCTION,
    HANDLER_JOB,
    Envelope,
    format_backoff,
    new_uuid,
    new_uuids,
    pushed_at_now,
)
from qctl.payload.models import take_encoded_classes
from qctl.payload.signing import Signer
from qctl.payload.values import class_path, encode, take_encoded_enums
from qctl.payload.writing import Layout, encode_plain, encode_sorted, quote, write


def build_envelope(
    job: Job,
    signer: Signer | None,
    allow_main: bool = False,
    uuid: str | None = None,
    extra_data: Mapping[str, Any] | None = None,
) -> Envelope:
    """`uuid` replaces the random one (chain links and batch members get derived ids); `extra_data`
    rides in `data` beside the command (chain and batch fields)."""
    handler, command_name, command = _command(job, allow_main)
    if isinstance(job, ShouldBeEncrypted):
        if signer is None:
            raise SerializationError(f"{command_name}: ShouldBeEncrypted jobs need an app key (`qctl key:generate`)")
        command = signer.encrypt(json.dumps(command, separators=(",", ":")).encode())
    return Envelope(
        uuid=uuid or new_uuid(),
        display_name=job.display_name(),
        job=handler,
        command_name=command_name,
        command=command,
        max_tries=_optional_int(job, "tries"),
        max_exceptions=_optional_int(job, "max_exceptions"),
        fail_on_timeout=bool(job.option("fail_on_timeout")),
        backoff=_backoff(job),
        timeout=_optional_number(job, "timeout"),
        retry_until=_timestamp(job.option("retry_until")),
        pushed_at=pushed_at_now(),
        extra_data=dict(extra_data) if extra_data else {},
    )


OPTIONS = ("tries", "max_exceptions", "fail_on_timeout", "backoff", "timeout", "retry_until", "display_name")
"""What a job may set per instance (or as a method) that changes its payload's fixed fields."""
PASSED_AS_THEY_ARE = (str, int, bool, type(None))
"""Attribute values `encode` returns unchanged."""


class BulkPayloads:
    """Payloads for many jobs at once (`Queue.bulk`): what a class's jobs share (names, options: the
    layout of the payload's fixed fields) is taken from its first job's envelope, built and checked as
    `dispatch()` builds it, and reused for the others; the push time is taken once, and uuids come from
    one read of the random source per 256.

    `write` returns None for what it cannot write this way (a class not seen yet, jobs whose options
    are methods or set on the instance, queued functions, encrypted jobs, enum or model attributes):
    the dispatcher builds those in full and hands the envelope to `learn`.
    """

    def __init__(self, signer: Signer | None) -> None:
        self.signer = signer
        self.pushed_at = pushed_at_now()
        self._pushed_text = quote(self.pushed_at)
        self._uuids = new_uuids()
        self._layouts: dict[type, Layout | None] = {}
        """Per class: the layout its jobs share, or None when each is built in full."""

    def write(self, job: Job) -> tuple[str, str] | None:
        """(uuid, payload text), or None: build this one in full."""
        cls = type(job)
        layout = self._layouts.get(cls)
        attributes = job.__dict__
        if layout is None or not OPTIONS_SET.isdisjoint(attributes):
            return None
        where = cls.__qualname__
        command = {
            key: value if type(value) in PASSED_AS_THEY_ARE else encode(value, f"{where}.{key}")
            for key, value in attributes.items() if not key.startswith("_")
        }
        if take_encoded_classes() or take_encoded_enums():  # models and enums are checked in full
            return None
        uuid = next(self._uuids)
        values = [quote(uuid), self._pushed_text, encode_plain(command)]
        if self.signer is not None:
            values += (values[0], self._pushed_text, encode_sorted(command))
        return uuid, write(layout, values, self.signer)

    def learn(self, job: Job, envelope: Envelope) -> None:
        """Note a job built in full: the first of its class gives the layout the others are written with."""
        cls = type(job)
        if cls in self._layouts or not OPTIONS_SET.isdisjoint(job.__dict__) or envelope.extra_data:
            return
        self._layouts[cls] = envelope.layout(()) if _has_plain_options(cls) else None


OPTIONS_SET = frozenset(OPTIONS)


def _has_plain_options(cls: type) -> bool:
    """Whether every job of `cls` has the same fixed payload fields (unless set on the instance)."""
    return (
        not issubclass(cls, QueuedFunction | ShouldBeEncrypted)
        and cls.payload_attributes is Job.payload_attributes  # type: ignore[attr-defined]
        and cls.option is Job.option  # type: ignore[attr-defined]
        and cls.display_name is Job.display_name  # type: ignore[attr-defined]
        and cls.retry_until is Job.retry_until  # type: ignore[attr-defined]
        and cls.__getattribute__ is object.__getattribute__
        and all(type(getattr(cls, name, None)) in PLAIN_OPTION_TYPES for name in OPTIONS[:5])
    )


PLAIN_OPTION_TYPES = (type(None), bool, int, float, str, list, tuple)
"""Option values that are the same for every job of the class (no method, property or other descriptor)."""


def _command(job: Job, allow_main: bool) -> tuple[str, str, Any]:
    if isinstance(job, QueuedFunction):
        name = class_path(job.function, "queued function", allow_main)
        args, kwargs = job.arguments
        command = {
            "args": encode(list(args), f"{name}(args)", allow_main),
            "kwargs": encode(dict(kwargs), f"{name}(kwargs)", allow_main),
            "catch": [class_path(cb, f"{name} catch callback", allow_main) for cb in job.catch_callbacks],
        }
        return HANDLER_FUNCTION, name, command
    cls = type(job)
    name = class_path(cls, cls.__qualname__, allow_main)
    attributes = job.payload_attributes()
    command = {key: encode(value, f"{cls.__qualname__}.{key}", allow_main) for key, value in attributes.items()}
    return HANDLER_JOB, name, command


def _optional_int(job: Job, name: str) -> int | None:
    value = job.option(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise SerializationError(f"{type(job).__qualname__}.{name}: expected a whole number from 0 to {MAX_COUNT}, got {value!r}")
    return value


def _optional_number(job: Job, name: str) -> float | None:
    value = job.option(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_SECONDS:
        raise SerializationError(
            f"{type(job).__qualname__}.{name}: expected 0 to {MAX_SECONDS} seconds, got {value!r}"
        )
    return value


def _backoff(job: Job) -> str | None:
    value = job.option("backoff")
    parts = value if isinstance(value, list | tuple) else [] if value is None else [value]
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, int | float) or not 0 <= part <= MAX_SECONDS:
            raise SerializationError(
                f"{type(job).__qualname__}.backoff: expected seconds from 0 to {MAX_SECONDS} (or a list of them), got {value!r}"
            )
    return format_backoff(value)


def _timestamp(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        value = value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 2**40:
        return int(value)
    raise SerializationError(f"retry_until must return a datetime or a unix time, got {value!r}")


def delay_seconds(delay: Any, now: float) -> float:
    """`delay()` accepts seconds, a timedelta or an aware datetime (at most MAX_SECONDS ahead)."""
    if delay is None:
        return 0.0
    if isinstance(delay, dt.timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, dt.datetime):
        if delay.tzinfo is None:
            raise SerializationError("delay(): a datetime must be timezone-aware")
        seconds = delay.timestamp() - now
    elif isinstance(delay, int | float) and not isinstance(delay, bool):
        seconds = float(delay)
    else:
        raise SerializationError(f"delay(): expected seconds, a timedelta or an aware datetime, got {delay!r}")
    if not seconds <= MAX_SECONDS:  # NaN and inf too
        raise SerializationError(f"delay(): at most {MAX_SECONDS} seconds ahead, got {delay!r}")
    return max(0.0, seconds)
