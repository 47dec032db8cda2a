"""Middleware for batched jobs."""

from __future__ import annotations

from typing import Any

from qctl.middleware.base import Next


class SkipIfBatchCancelled:
    """Do not run the job once its batch was cancelled; it still counts as processed (as in Laravel)."""

    def handle(self, job: Any, next: Next) -> Any:
        batch = job.batch()
        if batch is not None and batch.cancelled():
            return None
        return next(job)
