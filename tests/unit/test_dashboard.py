"""`qctl top`'s drawing without servers: sparklines, progress bars, sharing the screen's rows, and
the jobs-per-minute series it reads from the metrics buckets."""

from __future__ import annotations

from qctl.cache.memory import MemoryCacheStore
from qctl.cli.dashboard import bar, share_rows, sparkline
from qctl.monitoring.metrics import processed_per_minute
from qctl.worker.metrics import CacheMetrics
from tests.support.lifecycle_fakes import FakeClock


def test_a_sparkline_has_one_character_per_minute_scaled_to_the_busiest() -> None:
    assert sparkline([0, 1, 2, 4, 8]) == "▁▂▃▅█"
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([]) == "-"
    assert sparkline([0, 1, 8], unicode=False) == "_.#"


def test_a_bar_reads_without_colour() -> None:
    assert bar(50) == "█" * 8 + "░" * 8
    assert bar(0, unicode=False) == "-" * 16 and bar(100, unicode=False) == "#" * 16
    assert bar(250) == "█" * 16  # a bad percentage never widens it


def test_rows_are_shared_in_turn_so_every_panel_keeps_some() -> None:
    assert share_rows([30, 2, 5, 0], 10) == [4, 2, 4, 0]
    assert share_rows([1, 1, 1, 1], 100) == [1, 1, 1, 1]
    assert share_rows([5, 5], 0) == [0, 0]


def test_jobs_per_minute_come_from_every_workers_minute_buckets() -> None:
    clock = FakeClock(start=1_000_000 * 60.0)
    cache = MemoryCacheStore(clock)
    first, second = CacheMetrics(cache, "host-a:1:1", clock=clock), CacheMetrics(cache, "host-b:2:2", clock=clock)
    first.record(("main", "default", "Ship"), "processed", 0.01, None)
    clock.advance(120)
    for _ in range(3):
        second.record(("main", "default", "Mail"), "processed", 0.01, None)
    second.record(("main", "default", "Mail"), "failed", 0.01, None)  # failed: not processed
    second.record(("main", "mail", "Mail"), "processed", 0.01, None)
    first.flush()
    second.flush()
    found = processed_per_minute(cache, 5, clock.time())
    assert found[("main", "default")] == [0, 0, 1, 0, 3]
    assert found[("main", "mail")] == [0, 0, 0, 0, 1]
    assert processed_per_minute(cache, 1, clock.time() + 600) == {}  # ten minutes on: nothing recent
    assert processed_per_minute(cache, 2, clock.time() - 60) == {("main", "default"): [1, 3],  # a clock behind
                                                                  ("main", "mail"): [0, 1]}  # the writers': now


def test_columns_fit_the_screen_by_narrowing_the_shrinking_ones_last_first() -> None:
    from qctl.cli.dashboard import Column, fit

    columns = [Column("id"), Column("class", shrinks_to=5, widest=8), Column("error", shrinks_to=6)]
    rows = [["a" * 10, "LongClassName", "E" * 50]]
    assert fit(columns, rows, 200) == [10, 8, 50]  # room enough: whole cells (the class capped)
    assert fit(columns, rows, 40) == [10, 8, 18]  # 10 + 2 + 8 + 2 + 18
    assert fit(columns, rows, 25) == [10, 5, 6]  # both at their least; the id is never cut
