"""Reading job metrics back: every worker's bucket rows of a time window, added up per series.

Rows are those `qctl.worker.metrics.CacheMetrics` writes; a window that fits in the minute
buckets' retention is read from them (to the minute), a longer one from the hour buckets.
Read-only: a cache table that does not exist holds no metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from qctl.cache import keys
from qctl.cache.base import CacheStore
from qctl.config import MetricsConfig
from qctl.db.reading import TableMissingError, reading_only
from qctl.worker.metrics import Series, Totals, decode_row


@dataclass(frozen=True)
class Window:
    seconds: float
    now: float

    def prefix_and_first_bucket(self, config: MetricsConfig) -> tuple[str, int]:
        if self.seconds <= config.minutes_kept_hours * 3600:
            return keys.METRICS_MINUTE_PREFIX, int((self.now - self.seconds) // 60)
        return keys.METRICS_HOUR_PREFIX, int((self.now - self.seconds) // 3600)


def read_totals(cache: CacheStore, config: MetricsConfig, window: Window) -> dict[Series, Totals]:
    """Every series with something in the window, added up over workers and buckets.

    The window counts whole buckets, every one it overlaps: `--since 1m` is the current minute and
    the one before it, `--since 1h` the last 61 minutes, a window past the minute buckets' retention
    whole hours."""
    prefix, first = window.prefix_and_first_bucket(config)
    found: dict[Series, Totals] = {}
    for _, series, totals in read_buckets(cache, prefix, first):
        found.setdefault(series, Totals()).merge(totals)
    return found


def processed_per_minute(cache: CacheStore, minutes: int, now: float) -> dict[tuple[str, str], list[int]]:
    """Jobs processed per (connection, queue) in each of the last `minutes` minutes, oldest first
    (the current minute last): what `qctl top` draws as a sparkline."""
    current = int(now // 60)
    found: dict[tuple[str, str], list[int]] = {}
    for bucket, (connection, queue, _), totals in read_buckets(cache, keys.METRICS_MINUTE_PREFIX, current - minutes + 1):
        counts = found.setdefault((connection, queue), [0] * minutes)
        counts[min(bucket, current) - current - 1] += totals.processed  # a host whose clock is ahead: now
    return found


def read_buckets(cache: CacheStore, prefix: str, first: int) -> Iterator[tuple[int, Series, Totals]]:
    """(bucket number, series, totals) of every worker's row from bucket `first` on."""
    for key, value in read_rows(cache, prefix).items():
        bucket = key[len(prefix):].split(":", 1)[0]
        if not bucket.isdigit() or int(bucket) < first:
            continue
        for series, totals in decode_row(value).items():
            yield int(bucket), series, totals


def read_rows(cache: CacheStore, prefix: str) -> dict[str, str]:
    """Every worker's stored rows under `prefix` (minute or hour buckets); none when the cache table is missing."""
    try:
        with reading_only():
            return cache.items(prefix)
    except TableMissingError:
        return {}


def metrics_row(series: Series, totals: Totals) -> dict[str, Any]:
    connection, queue, job_class = series

    def seconds(ms: float | None) -> float | None:
        return None if ms is None else round(ms / 1000, 4)

    row: dict[str, Any] = {"connection": connection, "queue": queue, "class": job_class,
                           "processed": totals.processed, "failed": totals.failed, "released": totals.released}
    for name, histogram in (("runtime", totals.runtime), ("wait", totals.wait)):
        count = histogram.count
        row[f"{name}_p50_seconds"] = seconds(histogram.percentile(0.5))
        row[f"{name}_p95_seconds"] = seconds(histogram.percentile(0.95))
        row[f"{name}_max_seconds"] = seconds(histogram.max_ms) if count else None
        row[f"{name}_mean_seconds"] = seconds(histogram.total_ms / count) if count else None
    return row
