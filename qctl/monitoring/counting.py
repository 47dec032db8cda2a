"""Job totals that only grow, for Prometheus counters, from the workers' hour rows.

A worker rewrites its row of the current hour with its totals so far, and rows expire after
`[metrics] hours_kept_days`, so the sum of the rows drops whenever an old hour expires. A
counter must never drop between scrapes, so each read adds only what every row grew by since
the previous one: a new row (a new hour, a new worker) counts whole, a row that shrank was
written anew and counts whole too, a row that expired simply adds nothing more.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from qctl.worker.metrics import Histogram, Series, Totals, decode_row


class JobCounter:
    """Totals per (connection, queue, class) across reads of the hour rows.

    `from_zero`: the first read only learns the rows (what they held before is not counted),
    as a long-running exporter's counters start at zero; otherwise the first read counts every
    row the store still holds."""

    def __init__(self, from_zero: bool) -> None:
        self.totals: dict[Series, Totals] = {}
        self._seen: dict[str, dict[Series, Totals]] = {}
        self._learning = from_zero
        self._lock = threading.Lock()

    def update(self, rows: Mapping[str, str]) -> dict[Series, Totals]:
        """Add the growth of `rows` (key → stored row); the totals so far (every series seen, even at 0)."""
        with self._lock:
            fresh: dict[str, dict[Series, Totals]] = {}
            for key, text in rows.items():
                now, before = decode_row(text), self._seen.get(key, {})
                for series, totals in now.items():
                    counted = self.totals.setdefault(series, Totals())
                    if not self._learning:
                        counted.merge(growth(totals, before.get(series)))
                fresh[key] = now
            self._seen, self._learning = fresh, False
            return {series: copy_of(totals) for series, totals in self.totals.items()}


def growth(now: Totals, before: Totals | None) -> Totals:
    """What a row's series added since it was read before (all of it when the row is new or was rewritten smaller)."""
    if before is None or _shrank(now, before):
        return now
    return Totals(now.processed - before.processed, now.failed - before.failed, now.released - before.released,
                  _histogram_growth(now.runtime, before.runtime), _histogram_growth(now.wait, before.wait))


def _shrank(now: Totals, before: Totals) -> bool:
    counts = ((now.processed, before.processed), (now.failed, before.failed), (now.released, before.released))
    buckets = [*zip(now.runtime.counts, before.runtime.counts, strict=True), *zip(now.wait.counts, before.wait.counts, strict=True)]
    return any(a < b for a, b in (*counts, *buckets))


def _histogram_growth(now: Histogram, before: Histogram) -> Histogram:
    return Histogram([a - b for a, b in zip(now.counts, before.counts, strict=True)],
                     max(0.0, now.total_ms - before.total_ms), now.max_ms)


def copy_of(totals: Totals) -> Totals:
    copied = Totals()
    copied.merge(totals)
    return copied
