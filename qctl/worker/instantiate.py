"""A verified envelope back to a live Job instance (or a queued function call)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from qctl.errors import ModelNotFoundError, PayloadError
from qctl.jobs.functions import QueuedFunction
from qctl.jobs.job import Job
from qctl.jobs.resolve import Resolver
from qctl.payload.envelope import Envelope
from qctl.payload.models import ModelRef, decoded_refs, replace_refs
from qctl.payload.signing import Signer
from qctl.payload.values import TAG, decode


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


Fetch = Callable[[ModelRef], Any]


def instantiate(envelope: Envelope, resolver: Resolver, signer: Signer | None, fetch: Fetch | None = None) -> Job:
    """The job the payload describes; model attributes are fetched with `fetch` (a missing one raises
    ModelNotFoundError, marked `delete_job` when the class says `delete_when_missing_models`)."""
    command = command_data(envelope, signer)
    refs = decoded_refs()
    if envelope.is_function:
        job: Job = _queued_function(envelope, command, resolver)
    else:
        cls = resolver.job_class(envelope.command_name)
        job = cls.__new__(cls)
        where = cls.__qualname__
        for name, value in command.items():
            if not isinstance(name, str) or name.startswith("_"):
                raise PayloadError(f"{where}: attribute name {name!r} is not allowed in a payload")
            try:
                job.__dict__[name] = decode(value, f"{where}.{name}", resolver.value_class)
            except PayloadError:
                if not envelope.is_encrypted:
                    raise
                raise PayloadError(  # the reason would quote the decrypted value
                    f"{where}.{name}: cannot decode this {_kind_of(value)} (an encrypted job's values are never shown)"
                ) from None
    if decoded_refs() != refs:
        _fetch_models(job, fetch)
    return job


def _fetch_models(job: Job, fetch: Fetch | None) -> None:
    if fetch is None:
        raise ModelNotFoundError(f"{job.display_name()}: holds models, but this runner cannot fetch them")
    try:
        if isinstance(job, QueuedFunction):
            job._qctl_args = replace_refs(tuple(job._qctl_args), fetch)
            job._qctl_kwargs = replace_refs(dict(job._qctl_kwargs), fetch)
            return
        for name, value in list(job.__dict__.items()):
            if not name.startswith("_"):
                job.__dict__[name] = replace_refs(value, fetch)
    except ModelNotFoundError as exc:
        exc.delete_job = bool(getattr(job, "delete_when_missing_models", False))
        raise


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


def _kind_of(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get(TAG), str):
        return f"{value[TAG][:40]} value"
    return f"{type(value).__name__} value"
