"""Job middleware: objects with `handle(job, next)` wrapped around a job's handle()."""
