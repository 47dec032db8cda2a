"""Scaffolding commands: make:job, make:*-table, migrate, key:generate."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qctl.cli import context, output
from qctl.config import Config, ConnectionConfig

if TYPE_CHECKING:
    from qctl.scaffold import Made


def make_job(
    name: Annotated[str, typer.Argument(help="Class name, like ProcessPodcast.")],
    path: Annotated[Path, typer.Option("--path", help="Directory (a package) to write the module into.")] = Path("jobs"),
) -> None:
    """Write a job module from qctl's template."""
    from qctl import scaffold

    target, app_entry = scaffold.make_job(name, path, context.cwd())
    output.info(f"Job written: {target}")
    output.info(f"Workers run it once {app_entry!r} is listed in `app` in qctl.toml.")


def _make_table(ctx: typer.Context, which: str) -> None:
    from qctl import scaffold
    from qctl.db.engines import get_engine
    from qctl.db.migrations import render_sql

    url, made = _made_tables(context.get(ctx).config, which)
    tables = [table for table, _, _ in made]
    alembic_ini = Path("alembic.ini")
    if alembic_ini.is_file() and importlib.util.find_spec("alembic") is not None:
        target = scaffold.write_alembic_revision(made, alembic_ini)
    else:
        sql = "\n".join(render_sql(table, get_engine(url)) for table in tables)
        target = scaffold.write_sql_migration(tables, sql, Path("migrations"))
    output.info(f"Migration written: {target}")


def _made_tables(config: Config, which: str) -> tuple[str, list[Made]]:
    """The database and the tables one make:*-table migration creates."""
    from qctl.db import schema

    if which == "queue":
        name = _queue_table(config)
        return _queue_url(config), [(schema.jobs_table(name), "jobs_table", name)]
    if which == "failed":
        name = config.failed.table
        return config.failed.url, [(schema.failed_jobs_table(name), "failed_jobs_table", name)]
    name = config.batching.table
    return config.batching.url, [(schema.job_batches_table(name), "job_batches_table", name),
                                 (schema.job_batch_members_table(name), "job_batch_members_table", name)]


def _queue_connection(config: Config) -> ConnectionConfig:
    """The default connection when it is a database one, else the first database connection."""
    connection = config.connection()
    if connection.driver != "database":
        connection = next((c for c in config.connections.values() if c.driver == "database"), connection)
    return connection


def _queue_url(config: Config) -> str:
    return _queue_connection(config).url or ""


def _queue_table(config: Config) -> str:
    return _queue_connection(config).table


def make_queue_table(ctx: typer.Context) -> None:
    """Write the migration for the jobs table (Alembic revision, or SQL for your database)."""
    _make_table(ctx, "queue")


def make_failed_table(ctx: typer.Context) -> None:
    """Write the migration for the failed_jobs table."""
    _make_table(ctx, "failed")


def make_batches_table(ctx: typer.Context) -> None:
    """Write the migration for the job_batches table and its job_batches_jobs side table."""
    _make_table(ctx, "batches")


def migrate(ctx: typer.Context) -> None:
    """Create every qctl table that is missing."""
    from qctl.db.tables import create_all_missing

    created = create_all_missing(context.get(ctx).config)
    if not created:
        output.info("Nothing to migrate: every qctl table exists.")
    for where, name in created:
        output.info(f"Created {name} in {where}")


def key_generate(
    ctx: typer.Context,
    write: Annotated[bool, typer.Option("--write", help="Set `key = …` in the config file found (qctl.toml, or [tool.qctl] in pyproject.toml) instead of printing it.")] = False,
    force: Annotated[bool, typer.Option("--force", help="With --write: replace a key that is already set.")] = False,
) -> None:
    """Print a new app key for `key = "…"` in qctl.toml (or QCTL_KEY); --write puts it in the config file."""
    import os

    from qctl.errors import UsageError
    from qctl.payload.signing import generate_key

    key = generate_key()
    if not write:
        if force:
            raise UsageError("--force only goes with --write")
        output.line(key)
        return
    from qctl.configfile import ConfigFile, found_file, set_key

    file = found_file(context.get(ctx).config)
    if file is None:  # nothing found: a qctl.toml here, which discovery then finds
        file = ConfigFile(context.cwd() / "qctl.toml", False)
        file.path.touch()
    set_key(file, key, force)
    output.info(f"App key written to {file.path}{' [tool.qctl]' if file.in_pyproject else ''}.")
    if "QCTL_KEY" in os.environ:
        output.info("Note: QCTL_KEY is set in this environment and wins over the file.")
