"""A verified envelope back to a live Job instance (or a queued function call)."""

from __future__ import annotations

import json
from typing import Any

from qctl.errors import PayloadError
from qctl.jobs.functions import QueuedFunction
from qctl.jobs.job import Job
from qctl.jobs.resolve import Resolver
from qctl.payload.envelope import Envelope
from qctl.payload.signing import Signer
from qctl.payload.values import decode


def command_data(envelope: Envelope, signer: Signer | None) -> dict[str, Any]:
    command = envelope.command
    if isinstance(command, str):
        if signer is None:
            raise PayloadError("payload is encrypted but this worker has no key")
        try:
            command = json.loads(signer.decrypt(command))
        except ValueError:
            raise PayloadError("decrypted payload is not valid JSON") from None
    if not isinstance(command, dict):
        raise PayloadError("payload field 'data.command' must be an object")
    return command


def instantiate(envelope: Envelope, resolver: Resolver, signer: Signer | None) -> Job:
    command = command_data(envelope, signer)
    if envelope.is_function:
        return _queued_function(envelope, command, resolver)
    cls = resolver.job_class(envelope.command_name)
    job = cls.__new__(cls)
    where = cls.__qualname__
    for name, value in command.items():
        if not isinstance(name, str) or name.startswith("_"):
            raise PayloadError(f"{where}: attribute name {name!r} is not allowed in a payload")
        job.__dict__[name] = decode(value, f"{where}.{name}", resolver.value_class)
    return job


def _queued_function(envelope: Envelope, command: dict[str, Any], resolver: Resolver) -> QueuedFunction:
    fn = resolver.function(envelope.command_name)
    where = envelope.command_name
    args = decode(command.get("args", []), f"{where}(args)", resolver.value_class)
    kwargs = decode(command.get("kwargs", {}), f"{where}(kwargs)", resolver.value_class)
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise PayloadError(f"{where}: arguments must be a list and an object")
    job = QueuedFunction(fn, *args, **kwargs)
    for path in command.get("catch", []):
        job._qctl_catch.append(resolver.callback(path))
    return job
