"""`qctl supervisor:config` (a supervisord program section) and `qctl supervise` (a foreground pool)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from qctl.cli import context, options, output
from qctl.cli.context import CliContext
from qctl.supervisor.program import DEFAULT_PROGRAM, PoolRequest
from qctl.worker.options import WorkerOptions


@options.takes_worker_options
def supervisor_config(
    ctx: typer.Context,
    connection: options.Connection = None,
    program: options.Program = DEFAULT_PROGRAM,
    numprocs: options.Numprocs = 1,
    user: options.User = None,
    log: options.Log = None,
    stopwaitsecs: options.Stopwaitsecs = None,
    output_file: options.Output = None,
    verbose: options.Verbose = False,
    *,
    worker: WorkerOptions,
) -> None:
    """Print (or write to --output) a supervisord program config that keeps a pool of workers running.

    Refuses, with the reason and exit status 2, a --timeout at or above the
    connection's retry_after and a --stopwaitsecs below --timeout.
    """
    from qctl.supervisor.program import program_for
    from qctl.supervisor.render import render_program

    request = pool_request(context.get(ctx), connection, worker, program=program, numprocs=numprocs, user=user,
                           log=log, stopwaitsecs=stopwaitsecs, verbose=verbose)
    text = render_program(program_for(request))
    if output_file is None:
        sys.stdout.write(text)
        return
    output_file.write_text(text, encoding="utf-8")
    output.info(f"Wrote {output_file}: copy it into /etc/supervisor/conf.d/, then run "
                "`supervisorctl reread` and `supervisorctl update`.")


@options.takes_worker_options
def supervise(
    ctx: typer.Context,
    connection: options.Connection = None,
    numprocs: options.Numprocs = 1,
    stopwaitsecs: options.Stopwaitsecs = None,
    verbose: options.Verbose = False,
    *,
    worker: WorkerOptions,
) -> None:
    """Run a pool of workers under a private supervisord in the foreground; Ctrl-C stops it gracefully.

    Workers that exit (restart, memory limit, timeout, kill) are started again.
    On SIGTERM or Ctrl-C every worker finishes its current job before the pool stops.
    """
    from qctl.supervisor.program import program_for
    from qctl.supervisor.supervise import Pool
    from qctl.supervisor.supervise import supervise as run_pool

    request = pool_request(context.get(ctx), connection, worker, numprocs=numprocs, stopwaitsecs=stopwaitsecs,
                           verbose=verbose)
    program = program_for(request, log="/dev/stdout", log_maxbytes="0")

    def started(pool: Pool) -> None:
        output.notice(f"supervising {program.numprocs} worker(s) on {request.connection.name!r} "
                      f"(supervisord pid {pool.process.pid}; status: supervisorctl -c {pool.config_file} status)")

    def stopping(signum: int) -> None:
        output.notice(f"stopping: each worker finishes its current job (up to {program.stopwaitsecs} s)")

    raise typer.Exit(run_pool(program, started, stopping))


def pool_request(cli: CliContext, connection: str | None, worker: WorkerOptions, **chosen: object) -> PoolRequest:
    from qctl.worker.command import config_file_args, qctl_executable

    return PoolRequest(
        connection=cli.config.connection(connection),
        options=worker,
        executable=tuple(qctl_executable()),
        config_args=tuple(config_file_args(cli.config_path)),
        directory=Path.cwd(),
        **chosen,  # type: ignore[arg-type]
    )
