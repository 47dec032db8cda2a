"""Every `qctl` command: its name, where it lives, its help panel, and the line `qctl --help` lists.

The root group (`app.LazyCommands`) imports a command's module only when that command runs or
its own help is asked for, so `qctl --help` lists every command from this table alone. The
listed line is the first paragraph of the command's docstring; a test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

WORK = "Workers"
FAILED = "Failed jobs"
QUEUES = "Queues"
BATCHES = "Batches"
SETUP = "Setup"


@dataclass(frozen=True)
class Entry:
    name: str
    module: str
    """Under qctl.cli."""
    function: str
    panel: str
    summary: str


COMMANDS = (
    Entry("work", "work", "work", WORK, "Process jobs from the queues until stopped."),
    Entry("listen", "listen", "listen", WORK,
          "Process jobs like `work`, restarting the worker when a watched .py file changes."),
    Entry("restart", "control", "restart", WORK,
          "Make every running worker exit (status 0) after its current job; its process manager starts a fresh one."),
    Entry("down", "control", "down", WORK,
          "Maintenance mode: workers take no jobs (except those started with --force) until `qctl up`."),
    Entry("up", "control", "up", WORK, "Leave maintenance mode: workers take jobs again."),
    Entry("pause", "control", "pause", WORK,
          "Pause queues: workers finish the job in hand, then take no jobs from them (but keep working their other "
          "queues) until `qctl continue`."),
    Entry("continue", "control", "continue_", WORK,
          "Continue paused queues: workers take their jobs again (within about a second)."),
    Entry("workers", "workers", "workers", WORK,
          "List running workers: name, pid, host, connection, queues (paused ones marked), state, current job (each slot's "
          "with --concurrency), RSS, CPU, uptime, jobs done (--json: failed and released too)."),
    Entry("supervisor:config", "supervisor", "supervisor_config", WORK,
          "Print (or write to --output) a supervisord program config that keeps a pool of workers running."),
    Entry("supervise", "supervisor", "supervise", WORK,
          "Run a pool of workers under a private supervisord in the foreground; Ctrl-C stops it gracefully."),
    Entry("failed", "failed", "failed", FAILED,
          "List failed jobs (newest first: id, connection, queue, class, failed at, error), or show one whole."),
    Entry("retry", "failed", "retry", FAILED,
          "Push failed jobs back onto their connection and queue (attempts start again), then forget them."),
    Entry("forget", "failed", "forget", FAILED, "Delete failed jobs by id."),
    Entry("flush", "failed", "flush", FAILED, "Delete every failed job (or only those older than --hours)."),
    Entry("prune-failed", "failed", "prune_failed", FAILED, "Delete failed jobs older than --hours (default 24)."),
    Entry("batches", "batches", "batches", BATCHES,
          "List batches with their progress (newest first), or one batch with its failed job ids."),
    Entry("retry-batch", "batches", "retry_batch", BATCHES,
          "Push the failed jobs of a batch back onto their queues (as `qctl retry` does)."),
    Entry("prune-batches", "batches", "prune_batches", BATCHES,
          "Delete finished batches older than --hours (default 24); with --unfinished / --cancelled, those too."),
    Entry("clear", "inspect", "clear", QUEUES, "Delete every pending job of a queue."),
    Entry("about", "about", "about", SETUP,
          "Show the config file found, every connection and store (passwords masked), app, key, versions, and "
          "which servers answer."),
    Entry("status", "status", "status", QUEUES,
          "Show every queue (ready, delayed, reserved, failed, oldest wait, workers), the workers and the batches "
          "in progress."),
    Entry("monitor", "monitor", "monitor", QUEUES,
          "Show the size and oldest wait of queues and alert on those over --max / --max-wait (run it from cron)."),
    Entry("metrics", "metrics", "metrics", QUEUES,
          "Show jobs processed, failed and released, with runtime and wait (p50, p95, max), per queue and job class."),
    Entry("top", "top", "top", QUEUES,
          "Watch queues (sizes, oldest wait, jobs done per minute), workers (state, job, RSS, CPU), recent failures "
          "and batches, redrawn every second; q or Ctrl-C quits."),
    Entry("serve-metrics", "prometheus", "serve_metrics", QUEUES,
          "Serve Prometheus metrics of the queues, workers and jobs on /metrics (and /healthz), read afresh on each "
          "scrape; job counters count from the start; Ctrl-C stops."),
    Entry("demo", "demo", "demo", SETUP, "Dispatch example jobs (two fail on purpose), work them off, show the failed ones."),
    Entry("migrate", "make", "migrate", SETUP, "Create every qctl table that is missing."),
    Entry("make:job", "make", "make_job", SETUP, "Write a job module from qctl's template."),
    Entry("make:queue-table", "make", "make_queue_table", SETUP,
          "Write the migration for the jobs table (Alembic revision, or SQL for your database)."),
    Entry("make:failed-table", "make", "make_failed_table", SETUP, "Write the migration for the failed_jobs table."),
    Entry("make:batches-table", "make", "make_batches_table", SETUP,
          "Write the migration for the job_batches table and its job_batches_jobs side table."),
    Entry("key:generate", "make", "key_generate", SETUP,
          'Print a new app key for `key = "…"` in qctl.toml (or QCTL_KEY); --write puts it in the config file.'),
)
BY_NAME = {entry.name: entry for entry in COMMANDS}
