"""Every error qctl raises on purpose; the CLI maps them to exit codes in one place."""

from __future__ import annotations


class QctlError(Exception):
    """Base of every error qctl raises on purpose (shown as one line, exit 1)."""

    exit_code = 1


class ConfigError(QctlError):
    """The configuration is wrong: names the file, the key and what was expected."""

    exit_code = 2


class UsageError(QctlError):
    """A command was called wrongly (a bad option value, a missing argument)."""

    exit_code = 2


class NotFoundError(QctlError):
    """An id on the command line names nothing (a failed job, a batch): exit 1, the command was right."""


class SerializationError(QctlError, TypeError):
    """A job holds a value that cannot be put in a payload (raised at dispatch)."""


class PayloadError(QctlError):
    """A stored payload cannot be turned back into a job: never retried."""


class SignatureError(PayloadError):
    """A payload's signature is missing or wrong."""


class UnknownJobError(PayloadError):
    """A payload names a job class or function that does not exist."""


class JobNotAllowedError(PayloadError):
    """A payload names something outside the packages listed in `app`."""


class ModelNotFoundError(PayloadError):
    """A model a job holds is gone from the database when the job runs (or cannot be fetched)."""

    delete_job: bool = False
    """The job says `delete_when_missing_models = True`: delete it quietly instead of failing it."""


class DriverError(QctlError):
    """A queue backend could not do what was asked (connection lost, server down)."""


class StoreUnavailableError(DriverError):
    """A store (failed jobs, cache) could not be reached."""


class StoreRefusedError(ConfigError, DriverError):
    """A store answered, but refused us for a reason retrying cannot heal (a wrong password, a database
    index that does not exist): names the config key; exit 2, and a worker stops instead of retrying."""


class MaxAttemptsExceededError(QctlError):
    """A job was attempted more times than allowed, or ran past its retry deadline."""


class JobTimedOutError(QctlError):
    """A job ran longer than its timeout."""


class ManuallyFailedError(QctlError):
    """A job called `self.fail()` with a message instead of an exception."""
