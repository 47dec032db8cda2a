"""Table shapes (Laravel's, so its knowledge carries over), built for configurable names."""

from __future__ import annotations

from functools import cache

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; MySQL's TEXT stops at 64 KB.
Id = BigInteger().with_variant(Integer(), "sqlite")
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


@cache
def jobs_table(name: str = "jobs") -> Table:
    table = Table(
        name,
        metadata,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("queue", String(255), nullable=False),
        Column("payload", LongText, nullable=False),
        Column("attempts", BigInteger, nullable=False, default=0),
        Column("reserved_at", BigInteger, nullable=True),
        Column("available_at", BigInteger, nullable=False),
        Column("created_at", BigInteger, nullable=False),
    )
    Index(f"{name}_queue_id_index", table.c.queue, table.c.id)
    # status and monitor count ready, delayed and reserved jobs, and find the oldest ready one, from
    # ranges of this index alone (no row is read)
    Index(f"{name}_queue_state_index", table.c.queue, table.c.reserved_at, table.c.available_at)
    return table


@cache
def failed_jobs_table(name: str = "failed_jobs") -> Table:
    table = Table(
        name,
        metadata,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("uuid", String(255), nullable=False, unique=True),
        Column("connection", Text, nullable=False),
        Column("queue", Text, nullable=False),
        Column("payload", LongText, nullable=False),
        Column("exception", LongText, nullable=False),
        Column("failed_at", DateTime, nullable=False),
    )
    Index(f"{name}_failed_at_index", table.c.failed_at)
    return table


@cache
def job_batches_table(name: str = "job_batches") -> Table:
    return Table(
        name,
        metadata,
        Column("id", String(36), primary_key=True),
        Column("name", String(255), nullable=False),
        Column("total_jobs", Integer, nullable=False),
        Column("pending_jobs", Integer, nullable=False),
        Column("failed_jobs", Integer, nullable=False),
        Column("failed_job_ids", LongText, nullable=False),
        Column("options", LongText, nullable=True),
        Column("cancelled_at", BigInteger, nullable=True),
        Column("created_at", BigInteger, nullable=False),
        Column("finished_at", BigInteger, nullable=True),
    )


@cache
def job_batch_members_table(batches_table: str = "job_batches") -> Table:
    """qctl's side table of `job_batches`: one row per member job, so an outcome is counted once."""
    return Table(
        f"{batches_table}_jobs",
        metadata,
        Column("batch_id", String(36), primary_key=True),
        Column("job_uuid", String(36), primary_key=True),
        Column("state", String(8), nullable=False),
        Column("callbacks", String(64), nullable=False, default="", server_default=""),
    )


@cache
def cache_table(name: str = "cache") -> Table:
    table = Table(
        name,
        metadata,
        Column("key", String(255), primary_key=True),
        Column("value", LongText, nullable=False),
        Column("expiration", BigInteger, nullable=False),
    )
    Index(f"{name}_expiration_index", table.c.expiration)
    return table


@cache
def cache_locks_table(name: str = "cache_locks") -> Table:
    table = Table(
        name,
        metadata,
        Column("key", String(255), primary_key=True),
        Column("owner", String(255), nullable=False),
        Column("expiration", BigInteger, nullable=False),
    )
    Index(f"{name}_expiration_index", table.c.expiration)
    return table
