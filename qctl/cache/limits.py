"""The rate limiter's sliding window as pure arithmetic over bucket counts (the SQL store runs it
in one transaction; lua/hit.lua is the same arithmetic inside Redis).

`period` is split into BUCKETS buckets of width w = period / BUCKETS; a hit at time t lands in
bucket b = floor(t / w). It is allowed while buckets b-K..b (K+1 of them) hold fewer than `limit`
hits. Every sliding window of length `period` lies inside the K+1 buckets of its last hit, so
none ever holds more than `limit`; a steady caller still gets `limit` per period * (1 + 1/K).
"""

from __future__ import annotations

import json
import math
import re

from qctl.cache.base import Hit

BUCKETS = 200
"""Buckets per period: a window is bounded exactly, and a steady caller gets `limit` per period * 1.005.
Stored entries never exceed the hits in the window, so a fine grain costs only where hits are many."""
SHORTEST_BUCKET = 1e-6
"""Seconds: a shorter period counts as BUCKETS microseconds on the stores that keep bucket numbers as
64-bit integers (Redis, PostgreSQL), whose clocks tell microseconds at best."""
LIMITER_PREFIX = "limiter:"
"""Where a limiter's buckets live among the store's keys (the SQL `cache` table, Redis)."""

Counts = dict[int, int]
DENSE = re.compile(r"[0-9]{1,19}:[0-9]{1,15}(,[0-9]{1,15})*")


def check_period(period: float) -> None:
    if not period > 0:
        raise ValueError(f"a rate limit's period must be more than 0 seconds, not {period!r}")


def check_window(limit: int, period: float) -> None:
    if limit < 1:
        raise ValueError(f"a rate limit must allow at least 1 hit per period, not {limit!r}")
    check_period(period)


def bucket_of(now: float, period: float) -> int:
    return math.floor(now / (period / BUCKETS))


def live_counts(counts: Counts, now: float, period: float) -> Counts:
    """The buckets that count at `now`: the K before the current one, it, and up to K ahead.

    Buckets ahead come from a caller whose clock runs a little fast; counting them errs on the
    safe side. Anything further off is left over from another period and dropped."""
    current = bucket_of(now, period)
    return {b: n for b, n in counts.items() if current - BUCKETS <= b <= current + BUCKETS and n > 0}


def count_hit(counts: Counts, now: float, limit: int, period: float) -> tuple[Hit, Counts]:
    """The decision for one hit at `now`, and the counts to store when it was allowed."""
    live = live_counts(counts, now, period)
    used = sum(live.values())
    if used >= limit:
        return Hit(False, 0, retry_after(live, now, limit, period)), live
    current = bucket_of(now, period)
    live[current] = live.get(current, 0) + 1
    remaining = limit - used - 1
    return Hit(True, remaining, 0.0 if remaining > 0 else retry_after(live, now, limit, period)), live


def retry_after(live: Counts, now: float, limit: int, period: float) -> float:
    """Seconds until enough old buckets leave the window for one more hit to fit (whole milliseconds, never early)."""
    width = period / BUCKETS
    total = sum(live.values())
    for bucket in sorted(live):
        total -= live[bucket]
        if total < limit:
            frees_at = (bucket + BUCKETS + 1) * width  # the first bucket whose window no longer reaches `bucket`
            return max(0.0, math.ceil((frees_at - now) * 1000) / 1000)
    return 0.0


def counted(counts: Counts, now: float, period: float) -> int:
    """The hits a check at `now` would count."""
    return sum(live_counts(counts, now, period).values())


def window_end(counts: Counts, period: float) -> float:
    """When the newest bucket stops counting: the stored counts may be forgotten after this."""
    return (max(counts, default=0) + BUCKETS + 1) * (period / BUCKETS)


def dumps(counts: Counts) -> str:
    return json.dumps({str(b): n for b, n in sorted(counts.items())}, separators=(",", ":"))


def loads(text: str) -> Counts:
    """Bucket counts from a stored value (JSON, or PostgreSQL's dense form, see qctl.cache.statements);
    anything unreadable counts as no hits."""
    if DENSE.fullmatch(text):
        first, _, counts = text.partition(":")
        return {int(first) + i: int(n) for i, n in enumerate(counts.split(",")) if n != "0"}
    try:
        raw = json.loads(text)
        return {int(b): int(n) for b, n in raw.items()} if isinstance(raw, dict) else {}
    except (ValueError, TypeError, AttributeError):
        return {}
