"""Every table the configuration asks for, grouped by database."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Table

from qctl.config import Config
from qctl.db import schema
from qctl.db.engines import get_engine, redact
from qctl.db.migrations import create_missing, create_missing_indexes


def tables_by_url(config: Config) -> dict[str, list[Table]]:
    wanted: dict[str, list[Table]] = defaultdict(list)
    in_use = set(config.declared) | {config.default}
    for connection in config.connections.values():
        if connection.name in in_use and connection.driver == "database" and connection.url:
            wanted[connection.url].append(schema.jobs_table(connection.table))
    if config.failed.driver == "database":
        wanted[config.failed.url].append(schema.failed_jobs_table(config.failed.table))
    if config.batching.driver == "database":
        wanted[config.batching.url].append(schema.job_batches_table(config.batching.table))
        wanted[config.batching.url].append(schema.job_batch_members_table(config.batching.table))
    if config.cache.driver == "database":
        wanted[config.cache.url].append(schema.cache_table(config.cache.table))
        wanted[config.cache.url].append(schema.cache_locks_table(f"{config.cache.table}_locks"))
    return wanted


def create_all_missing(config: Config) -> list[tuple[str, str]]:
    """Create what is missing (tables, and indexes an older qctl did not make); returns (database,
    table or index) pairs created."""
    created = []
    for url, tables in tables_by_url(config).items():
        unique = list({t.name: t for t in tables}.values())
        engine = get_engine(url)
        for name in create_missing(engine, unique) + create_missing_indexes(engine, unique):
            created.append((redact(url), name))
    return created
