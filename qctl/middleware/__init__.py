"""Job middleware: objects with `handle(job, next)` wrapped around a job's handle()."""

from qctl.middleware.batches import SkipIfBatchCancelled

__all__ = ["SkipIfBatchCancelled"]
