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
from qctl.payload.envelope import (
    HANDLER_FUNCTION,
    HANDLER_JOB,
    Envelope,
    format_backoff,
    new_uuid,
    pushed_at_now,
)
from qctl.payload.signing import Signer
from qctl.payload.values import class_path, encode


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
        backoff=format_backoff(job.option("backoff")),
        timeout=_optional_number(job, "timeout"),
        retry_until=_timestamp(job.option("retry_until")),
        pushed_at=pushed_at_now(),
        extra_data=dict(extra_data) if extra_data else {},
    )


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
    if isinstance(value, bool) or not isinstance(value, int):
        raise SerializationError(f"{type(job).__qualname__}.{name}: expected a whole number, got {value!r}")
    return value


def _optional_number(job: Job, name: str) -> float | None:
    value = job.option(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SerializationError(f"{type(job).__qualname__}.{name}: expected a number of seconds, got {value!r}")
    return value


def _timestamp(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    raise SerializationError(f"retry_until must return a datetime or a unix time, got {value!r}")


def delay_seconds(delay: Any, now: float) -> float:
    """`delay()` accepts seconds, a timedelta or an aware datetime."""
    if delay is None:
        return 0.0
    if isinstance(delay, dt.timedelta):
        return max(0.0, delay.total_seconds())
    if isinstance(delay, dt.datetime):
        if delay.tzinfo is None:
            raise SerializationError("delay(): a datetime must be timezone-aware")
        return max(0.0, delay.timestamp() - now)
    if isinstance(delay, int | float) and not isinstance(delay, bool):
        return max(0.0, float(delay))
    raise SerializationError(f"delay(): expected seconds, a timedelta or an aware datetime, got {delay!r}")
