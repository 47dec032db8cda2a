"""Job metrics without servers: histograms, a worker's bucket rows in a memory cache, reading them back."""

from __future__ import annotations

import time

from qctl.cache import keys
from qctl.cache.memory import MemoryCacheStore
from qctl.config import MetricsConfig
from qctl.monitoring.metrics import Window, metrics_row, read_totals
from qctl.worker.metrics import CacheMetrics, Histogram, decode_row, encode_row, wait_since
from tests.support.lifecycle_fakes import FakeClock

SERIES = ("main", "default", "jobs.Ship")


def test_histogram_percentiles_are_bucket_bounds_capped_by_the_maximum() -> None:
    histogram = Histogram()
    assert histogram.percentile(0.5) is None
    for ms in [3.0] * 90 + [400.0] * 9 + [7000.0]:
        histogram.add(ms)
    assert histogram.count == 100 and histogram.max_ms == 7000.0
    assert histogram.percentile(0.5) == 5.0 and histogram.percentile(0.95) == 500.0
    assert histogram.percentile(1.0) == 7000.0
    other = Histogram()
    other.add(2.0)
    histogram.merge(other)
    assert histogram.count == 101 and round(histogram.total_ms) == 3 * 90 + 400 * 9 + 7000 + 2


def test_rows_round_trip_and_damaged_rows_read_as_nothing() -> None:
    recorder = CacheMetrics(MemoryCacheStore(), "w1")
    recorder.record(SERIES, "processed", 0.01, 0.5)
    [minute] = recorder._minutes.values()  # noqa: SLF001
    assert decode_row(encode_row(minute))[SERIES].processed == 1
    assert decode_row("not json") == {} and decode_row("[[1, 2]]") == {}


def test_two_workers_add_up_and_old_buckets_fall_out_of_the_window() -> None:
    clock = FakeClock(start=1_000_000 * 60.0)
    cache = MemoryCacheStore(clock)
    first, second = CacheMetrics(cache, "host-a:1:1", clock=clock), CacheMetrics(cache, "host-b:1:1", clock=clock)
    for _ in range(3):
        first.record(SERIES, "processed", 0.02, 1.0)
    second.record(SERIES, "failed", 0.5, None)
    second.record(SERIES, "released", 0.1, 2.0)
    first.flush()
    second.flush()
    first.flush()  # nothing changed: a second write of the same totals counts nothing twice

    totals = read_totals(cache, MetricsConfig(), Window(3600, clock.time()))[SERIES]
    assert (totals.processed, totals.failed, totals.released) == (3, 1, 1)
    assert totals.runtime.count == 5 and totals.wait.count == 4
    row = metrics_row(SERIES, totals)
    assert row["class"] == "jobs.Ship" and row["runtime_max_seconds"] == 0.5 and row["wait_max_seconds"] == 2.0

    clock.advance(2 * 3600)  # two hours on: the minute rows are out of a one-hour window
    assert read_totals(cache, MetricsConfig(), Window(3600, clock.time())) == {}
    # ... but a day's window (still in the minute buckets' retention) sees them
    assert read_totals(cache, MetricsConfig(), Window(86400, clock.time()))[SERIES].processed == 3
    # and a week's window reads the hour buckets
    assert read_totals(cache, MetricsConfig(), Window(7 * 86400, clock.time()))[SERIES].processed == 3
    assert any(key.startswith(keys.METRICS_HOUR_PREFIX) for key in cache.items("qctl:metrics:"))


def test_an_hour_adds_up_its_minutes_and_passed_hours_are_dropped_once_written() -> None:
    clock = FakeClock(start=1_000_000 * 3600.0)
    cache = MemoryCacheStore(clock)
    recorder = CacheMetrics(cache, "w", clock=clock)
    recorder.record(SERIES, "processed", 0.01, None)
    clock.advance(120)
    recorder.record(SERIES, "processed", 0.01, None)
    recorder.flush()
    hour_rows = cache.items(keys.METRICS_HOUR_PREFIX)
    assert [decode_row(row)[SERIES].processed for row in hour_rows.values()] == [2]
    assert len(cache.items(keys.METRICS_MINUTE_PREFIX)) == 2
    clock.advance(3600)
    recorder.flush()
    assert recorder._minutes == {}  # noqa: SLF001


def test_wait_since_reads_pushed_at() -> None:
    assert wait_since("100.5", 102.0) == 1.5
    assert wait_since("", 102.0) is None and wait_since(None, 102.0) is None and wait_since("x", 1.0) is None
    assert wait_since("nan", 1.0) is None and wait_since("100", None) is None


def test_a_job_the_worker_ran_is_counted_at_the_next_flush() -> None:
    class Envelope:
        display_name, pushed_at = "jobs.Ship", "990.0"

    class Reserved:
        queue = "default"

    class Running:
        envelope, reserved, failed, released = Envelope(), Reserved(), False, True
        started = time.monotonic()

    clock = FakeClock(start=1_000.0)
    cache = MemoryCacheStore(clock)
    recorder = CacheMetrics(cache, "w", clock=clock)
    recorder.record_job("main", Running(), 1_000.0)
    Running.envelope = None  # a payload that could not be read
    recorder.record_job("main", Running(), 1_000.0)
    recorder.flush()
    found = read_totals(cache, MetricsConfig(), Window(60, clock.time()))
    assert found[SERIES].released == 1 and found[SERIES].wait.max_ms == 10_000.0
    assert found[("main", "default", "(unreadable)")].released == 1
