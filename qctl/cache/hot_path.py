"""The database cache store's locks and limiter hits as one statement each on a pinned connection.

What a job middleware pays per job (WithoutOverlapping: acquire and release; RateLimited: a hit)
is then one round trip per operation. PostgreSQL runs all of them here; MariaDB its locks (its
hits keep the store's short transaction); SQLite and MySQL keep the store's SQLAlchemy path.
"""

from __future__ import annotations

from sqlalchemy import Table

from qctl.cache import limits, statements
from qctl.cache.base import Hit
from qctl.cache.pinned import PinnedStatements
from qctl.cache.statements import Statements
from qctl.db.engines import redact
from qctl.errors import StoreUnavailableError

CREATE_RACE_ATTEMPTS = 5
"""A hit that lost the race to create its limiter row is sent again (the row is there then)."""


def statements_for(pinned: PinnedStatements, cache: Table, locks: Table) -> Statements | None:
    """The statements for the pinned connections' database, or None where it has no one-statement forms."""
    name = pinned.engine.dialect.name
    if name == "sqlite":
        return None
    dialect = pinned.dialect()  # connects: whether a MySQL URL is MariaDB is known only then
    quote = dialect.identifier_preparer.quote
    if name == "postgresql":
        return statements.postgresql(quote(cache.name), quote(locks.name))
    if getattr(dialect, "is_mariadb", False):
        return statements.mysql(quote(cache.name), quote(locks.name))
    return None


class HotPath:
    def __init__(self, pinned: PinnedStatements, sql: Statements) -> None:
        self.pinned = pinned
        self.sql = sql

    def acquire(self, key: str, owner: str, seconds: float, now: float | None) -> bool:
        row = self.pinned.fetch_one("acquire a lock", self.sql.acquire,
                                    {"key": key, "owner": owner, "seconds": seconds, "now": now})
        return row is not None and row[0] == owner

    def release(self, key: str, owner: str, now: float | None) -> bool:
        return self.pinned.rowcount("release a lock", self.sql.release, {"key": key, "owner": owner, "now": now}) > 0

    def force_release(self, key: str, now: float | None) -> bool:
        return self.pinned.rowcount("release a lock", self.sql.force_release, {"key": key, "now": now}) > 0

    def owner(self, key: str, now: float | None) -> str | None:
        row = self.pinned.fetch_one("read a lock", self.sql.owner, {"key": key, "now": now})
        return None if row is None else str(row[0])

    def prune(self, batch: int, now: float | None) -> int:
        return self.pinned.rowcount("prune expired locks", self.sql.prune, {"batch": batch, "now": now})

    @property
    def counts_hits(self) -> bool:
        return self.sql.hit is not None

    def hit(self, row_key: str, limit: int, period: float, now: float | None) -> Hit:
        """One statement checks and counts, and answers with the live counts after it and the time it
        counted at; the rest of the answer follows from those here."""
        assert self.sql.hit is not None
        period = max(period, limits.BUCKETS * limits.SHORTEST_BUCKET)
        params = {"key": row_key, "now": now, "width": period / limits.BUCKETS, "buckets": limits.BUCKETS, "limit": limit}
        for _ in range(CREATE_RACE_ATTEMPTS):
            row = self.pinned.fetch_one("count a hit", self.sql.hit, params)
            assert row is not None  # the statement always answers one row
            allowed, used, value, at, settled = bool(row[0]), int(row[1]), str(row[2]), float(row[3]), bool(row[4])
            if settled:
                remaining = max(0, limit - used) if allowed else 0
                if remaining:
                    return Hit(True, remaining, 0.0)
                live = limits.live_counts(limits.loads(value), at, period)  # parsed only when a retry time is due
                return Hit(allowed, 0, limits.retry_after(live, at, limit, period))
        raise StoreUnavailableError(f"cache {redact(self.pinned.url)}: could not count a hit on {row_key!r}")
