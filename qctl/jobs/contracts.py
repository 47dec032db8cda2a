"""Marker base classes that change how a job is dispatched or stored."""

from __future__ import annotations


class ShouldBeEncrypted:
    """The job's data is encrypted with the app key (AES-GCM) inside its payload."""


class ShouldBeUnique:
    """Only one job with the same unique id may be queued at a time."""


class ShouldBeUniqueUntilProcessing(ShouldBeUnique):
    """Like ShouldBeUnique, but the lock is released as soon as the job starts."""
