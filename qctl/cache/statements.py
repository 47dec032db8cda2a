"""Every statement the database cache store sends on its pinned connection, per dialect.

Each is one statement in autocommit (no BEGIN, no COMMIT), written for the driver's `%(name)s`
parameters. `now` is the store clock's unix time, or NULL for the database's own clock, so
every worker host reads one clock and tests still move time by hand. A lock row is live while
`expiration > now`; expirations are whole seconds, rounded up (never early).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Statements:
    acquire: str
    """Insert the lock row, or take it over when it expired or is already the owner's; returns the owner
    when the owner holds it now (no row otherwise)."""
    release: str
    """Delete the live row only if `owner` holds it (compare-and-delete)."""
    force_release: str
    """Delete the live row whoever holds it."""
    owner: str
    """The live row's owner."""
    prune: str
    """Delete up to `batch` expired rows."""
    hit: str | None = None
    """One limiter hit: the row is locked (FOR UPDATE, the newest version), checked and counted, and
    the answer is (allowed, the hits in the window after it, the counts after, the time counted at,
    whether the row was there or made).
    A hit racing another to create the row answers False last and is sent again. None where the
    dialect counts in the store's short transaction instead."""


PG_NOW = "COALESCE(%(now)s::float8, extract(epoch FROM clock_timestamp())::float8)"
MYSQL_NOW = "COALESCE(%(now)s, UNIX_TIMESTAMP(NOW(6)))"

DENSE_FORMAT = "^[0-9]{1,19}:[0-9]{1,15}(,[0-9]{1,15})*$"
"""PostgreSQL keeps a limiter's counts as `<first bucket>:<count>,<count>,...` (limits.loads reads it):
the statement below slices and appends to that array instead of parsing and rebuilding JSON.
Anything else in the row (an unreadable value, an older JSON one) counts as no hits."""

_PG_HIT = """
WITH clock AS (
    SELECT t, floor(t / %(width)s)::bigint AS cur FROM (SELECT {now} AS t) AS source
), held AS (
    SELECT value, expiration FROM {cache} WHERE key = %(key)s FOR UPDATE
), stored AS MATERIALIZED (
    SELECT split_part(value, ':', 1)::bigint AS base, string_to_array(split_part(value, ':', 2), ',')::bigint[] AS counts
    FROM held, clock WHERE held.expiration > clock.t AND held.value ~ '{dense}'
), live AS MATERIALIZED (
    SELECT greatest(base, cur - %(buckets)s) AS base,
           counts[greatest(base, cur - %(buckets)s) - base + 1 : cur + %(buckets)s - base + 1] AS counts
    FROM stored, clock
), window_now AS MATERIALIZED (
    SELECT coalesce(live.base, clock.cur) AS base, coalesce(live.counts, '{{}}'::bigint[]) AS counts, clock.cur, clock.t,
           coalesce((SELECT sum(n) FROM unnest(live.counts) AS n), 0) AS used
    FROM clock LEFT JOIN live ON cardinality(live.counts) > 0
), decided AS MATERIALIZED (
    SELECT *, used < %(limit)s AS allowed FROM window_now
), next AS MATERIALIZED (
    SELECT allowed, t, used + allowed::int AS used, CASE WHEN allowed THEN least(base, cur) ELSE base END AS base, CASE
        WHEN NOT allowed THEN counts
        WHEN cardinality(counts) = 0 THEN ARRAY[1]::bigint[]
        WHEN cur < base THEN ARRAY[1]::bigint[] || array_fill(0::bigint, ARRAY[(base - cur - 1)::int]) || counts
        WHEN cur >= base + cardinality(counts)
            THEN counts || array_fill(0::bigint, ARRAY[(cur - base - cardinality(counts))::int]) || ARRAY[1]::bigint[]
        ELSE counts[1 : cur - base] || (counts[cur - base + 1] + 1) || counts[cur - base + 2 :]
    END AS counts
    FROM decided
), stored_next AS (
    SELECT allowed, used, t, base || ':' || array_to_string(counts, ',') AS value,
           ceil((base + cardinality(counts) + %(buckets)s) * %(width)s)::bigint AS expiration
    FROM next
), written AS (
    UPDATE {cache} SET value = stored_next.value, expiration = stored_next.expiration FROM stored_next
    WHERE key = %(key)s AND stored_next.allowed AND EXISTS (SELECT 1 FROM held)
    RETURNING 1
), created AS (
    INSERT INTO {cache} (key, value, expiration) SELECT %(key)s, value, expiration FROM stored_next
    WHERE NOT EXISTS (SELECT 1 FROM held)
    ON CONFLICT (key) DO NOTHING
    RETURNING 1
)
SELECT allowed, used, value, t, EXISTS (SELECT 1 FROM held) OR EXISTS (SELECT 1 FROM created) FROM stored_next
"""


def postgresql(cache: str, locks: str) -> Statements:
    """`cache` and `locks` are the quoted table names."""
    return Statements(
        acquire=(
            f"WITH clock AS (SELECT {PG_NOW} AS t) "
            f"INSERT INTO {locks} AS held (key, owner, expiration) "
            "SELECT %(key)s, %(owner)s, ceil(t + %(seconds)s)::bigint FROM clock "
            "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expiration = excluded.expiration "
            "WHERE held.expiration <= (SELECT t FROM clock) OR held.owner = excluded.owner "
            "RETURNING owner"
        ),
        release=f"DELETE FROM {locks} WHERE key = %(key)s AND owner = %(owner)s AND expiration > {PG_NOW}",
        force_release=f"DELETE FROM {locks} WHERE key = %(key)s AND expiration > {PG_NOW}",
        owner=f"SELECT owner FROM {locks} WHERE key = %(key)s AND expiration > {PG_NOW}",
        prune=(
            f"DELETE FROM {locks} WHERE key IN "
            f"(SELECT key FROM {locks} WHERE expiration <= {PG_NOW} LIMIT %(batch)s) AND expiration <= {PG_NOW}"
        ),
        hit=_PG_HIT.format(now=PG_NOW, cache=cache, dense=DENSE_FORMAT).strip(),
    )


def mysql(cache: str, locks: str) -> Statements:
    """MariaDB (MySQL has no RETURNING; it keeps the transactional path). NOW(6) is fixed for the whole statement, so each repetition reads the same time."""
    takes = f"(expiration <= {MYSQL_NOW} OR owner = VALUES(owner))"
    return Statements(
        acquire=(
            f"INSERT INTO {locks} (`key`, owner, expiration) "
            f"VALUES (%(key)s, %(owner)s, CEIL({MYSQL_NOW} + %(seconds)s)) "
            # owner first: the expiration's IF then sees the new owner
            f"ON DUPLICATE KEY UPDATE owner = IF({takes}, VALUES(owner), owner), "
            f"expiration = IF({takes}, VALUES(expiration), expiration) "
            "RETURNING owner"  # MariaDB 10.5+: the row as the statement left it
        ),
        release=f"DELETE FROM {locks} WHERE `key` = %(key)s AND owner = %(owner)s AND expiration > {MYSQL_NOW}",
        force_release=f"DELETE FROM {locks} WHERE `key` = %(key)s AND expiration > {MYSQL_NOW}",
        owner=f"SELECT owner FROM {locks} WHERE `key` = %(key)s AND expiration > {MYSQL_NOW}",
        prune=f"DELETE FROM {locks} WHERE expiration <= {MYSQL_NOW} LIMIT %(batch)s",
    )

